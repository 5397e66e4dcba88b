"""An ASGI app served by uvicorn on 127.0.0.1, in a thread of its own: the base of the fakes.

A fake provider server must run beside the code under test without sharing its event loop (a
test's virtual clock, or a blocked loop, must not slow the "network"), start on a free port, and
stop cleanly even while requests hang on purpose. Subclasses give the app; this gives the rest.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    import uvicorn


class LoopbackServer:
    """Start/stop, context managers and :meth:`_pause` for a fake server; subclasses implement
    :meth:`_asgi_app` (and may add uvicorn options in :meth:`_uvicorn_options`)."""

    label = "fake"
    """Named in errors and in the thread's name."""

    def __init__(self) -> None:
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._failure: BaseException | None = None

    def _asgi_app(self) -> Any:
        raise NotImplementedError

    def _uvicorn_options(self) -> dict[str, Any]:
        return {}

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"the {self.label} server is not running")
        return self._port

    def start(self, timeout: float = 10.0) -> None:
        """Start serving (blocks until the port answers, at most ``timeout`` seconds)."""
        import uvicorn

        # IPPROTO_TCP spelt out: asyncio turns Nagle's algorithm off only on sockets that say
        # so, and with it on, each small write after the first waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(self._asgi_app(), http="h11", loop="asyncio", lifespan="off",
                                log_config=None, access_log=False, timeout_graceful_shutdown=2,
                                **self._uvicorn_options())
        server = self._server = uvicorn.Server(config)

        def run() -> None:
            async def main() -> None:
                self._loop = asyncio.get_running_loop()
                self._stopping = asyncio.Event()
                await server.serve(sockets=[sock])

            try:
                asyncio.run(main())
            except BaseException as exc:  # noqa: BLE001 - reported by start() or stop()
                self._failure = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=self.label.replace(" ", "-"), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {self.label} server did not start: {self._failure!r}")
            time.sleep(0.005)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: requests hanging on purpose are released, open connections closed."""
        loop, stopping, server = self._loop, self._stopping, self._server
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:
                pass  # the loop has just closed
        if server is not None:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"the {self.label} server did not stop")
        self._thread = self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await anyio.to_thread.run_sync(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await anyio.to_thread.run_sync(self.stop)

    async def _pause(self, seconds: float | None) -> bool:
        """On the server's loop: wait ``seconds`` (``None``: until the server stops); True if it
        is stopping (a hang must end when the test ends)."""
        stopping = self._stopping
        if stopping is None:
            return True
        if seconds is not None and seconds <= 0:
            return stopping.is_set()
        with anyio.move_on_after(seconds):
            await stopping.wait()
        return stopping.is_set()
