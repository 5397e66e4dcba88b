"""The socket's life: admission, the ``start`` handshake, the call, and the last word.

Imported only when the transport is served (it needs Starlette), never when the plugin is merely
listed or its settings validated.
"""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import structlog
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from voiceflow.serving.api import ASGIApp, ClientError, CloseCode, Refused, ServingLimits, SessionHost
from voiceflow_websocket.call import Gone, WebSocketCall
from voiceflow_websocket.config import WebSocketConfig
from voiceflow_websocket.protocol import Start, check_audio, error, message, parse

log = structlog.get_logger("voiceflow.websocket")


class StarletteWire:
    """A Starlette WebSocket as the call's :class:`~voiceflow_websocket.call.Wire`."""

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        self._closed = False

    async def receive(self) -> bytes | str | None:
        if self._closed:
            return None
        event = await self._ws.receive()
        if event["type"] == "websocket.disconnect":
            self._closed = True
            return None
        data: bytes | None = event.get("bytes")
        return data if data is not None else str(event.get("text") or "")

    async def send(self, data: bytes | str) -> None:
        if self._closed:
            raise Gone
        try:
            if isinstance(data, bytes):
                await self._ws.send_bytes(data)
            else:
                await self._ws.send_text(data)
        except Exception as exc:  # noqa: BLE001 - whatever the server stack raises, the client is gone
            self._closed = True
            raise Gone from exc

    async def finish(self, last: str, code: CloseCode) -> None:
        """Send the last message and close; a client already gone is not an error."""
        try:
            await self.send(last)
            await self._ws.close(int(code))
        except Exception:  # noqa: BLE001 - see above
            pass
        self._closed = True


def build_app(host: SessionHost, config: WebSocketConfig) -> ASGIApp:
    async def endpoint(websocket: WebSocket) -> None:
        await serve_call(websocket, host, config)

    return Starlette(routes=[WebSocketRoute(config.path, endpoint)])


async def serve_call(websocket: WebSocket, host: SessionHost, config: WebSocketConfig) -> None:
    try:
        slot = host.admit()
    except Refused as refused:
        await websocket.accept()
        wire = StarletteWire(websocket)
        await wire.finish(message("error", code=refused.reason.value, message=str(refused),
                                  retry_after=refused.retry_after), CloseCode.TRY_AGAIN_LATER)
        return
    with slot:
        await websocket.accept()
        wire = StarletteWire(websocket)
        try:
            start = await handshake(wire, host.limits)
        except ClientError as failure:
            await wire.finish(error(failure), failure.close)
            return
        if start is None:
            return  # the client left before starting
        call = WebSocketCall(wire, start, host.limits, config, f"ws-{uuid.uuid4().hex[:12]}")
        log.info("websocket call", call_id=call.call_id, sample_rate=start.format.sample_rate,
                 acknowledges_marks=start.acknowledges_marks, metadata=start.metadata)
        try:
            await wire.send(message("started", call_id=call.call_id, format=start.format.as_dict()))
        except Gone:
            return
        try:
            reason = await slot.run(call)
            await call.send_remaining_events()
        except Gone:
            return
        finally:
            call.close()
        if call.failure is not None:
            await wire.finish(error(call.failure), call.failure.close)
        else:
            await wire.finish(message("hangup", reason=reason), CloseCode.NORMAL)


async def handshake(wire: StarletteWire, limits: ServingLimits) -> Start | None:
    """The first message must be ``start``, within the idle timeout."""
    try:
        with anyio.fail_after(limits.idle_timeout):
            first: Any = await wire.receive()
    except TimeoutError:
        raise ClientError("idle", f"no start within {limits.idle_timeout:g} s", CloseCode.NORMAL) from None
    if first is None:
        return None
    if isinstance(first, bytes):
        check_audio(first, limits.max_message_bytes)
        raise ClientError("bad_audio", "audio before start: send start first")
    start = parse(first)
    if not isinstance(start, Start):
        raise ClientError("bad_message", "the first message must be start")
    return start
