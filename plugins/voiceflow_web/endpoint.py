"""The agent's URL: the page and its scripts, and the signalling socket that places a call.

Imported only when the transport is served (it needs Starlette and aiortc), never when the
plugin is merely listed or its settings validated.

A call's life, as the handler of ``/call`` runs it: admission first (a refusal is an ``error``
and close 1013 before anything is spent), the offer within ``idle_timeout``, the answer, then the
page's ``hello`` over the data channel (the media path is up) within ``idle_timeout``; only then
does the session start, so the greeting is never spoken into a connection still being set up.
The socket stays open for the call: a ``hangup`` on it, or its close, ends the call.
"""

from __future__ import annotations

import json
import uuid
from importlib import resources

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from voiceflow.serving.api import ASGIApp, CallSlot, CloseCode, Refused, SessionHost
from voiceflow.tasks import create_task_group
from voiceflow_web.call import WebCall
from voiceflow_web.config import WebConfig
from voiceflow_web.peer import MediaError
from voiceflow_web.protocol import HangUp, Offer, ProtocolError, message, parse_signal

STATIC = {
    "page.js": "text/javascript",
    "level-meter.js": "text/javascript",
    "rtp-anchor.js": "text/javascript",
}
SETTINGS_SLOT = "{{settings}}"


def build_app(host: SessionHost, config: WebConfig) -> ASGIApp:
    files = resources.files("voiceflow_web") / "static"
    settings = json.dumps({"agent": host.agent_name, "ice_servers": config.ice_servers})
    page = (files / "index.html").read_text("utf-8").replace(SETTINGS_SLOT, settings.replace("</", "<\\/"))
    scripts = {name: (files / name).read_bytes() for name in STATIC}

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers={"cache-control": "no-cache"})

    async def script(request: Request) -> Response:
        name = request.url.path.rsplit("/", 1)[-1]
        return Response(scripts[name], media_type=STATIC[name], headers={"cache-control": "no-cache"})

    async def call(websocket: WebSocket) -> None:
        await serve_call(websocket, host, config)

    routes = [Route("/", index), WebSocketRoute("/call", call)]
    routes += [Route(f"/{name}", script) for name in STATIC]
    return Starlette(routes=routes)


async def serve_call(websocket: WebSocket, host: SessionHost, config: WebConfig) -> None:
    await websocket.accept()
    try:
        slot = host.admit()
    except Refused as refused:
        await _finish(websocket, message("error", code=refused.reason.value, message=str(refused),
                                         retry_after=refused.retry_after), CloseCode.TRY_AGAIN_LATER)
        return
    with slot:
        call = WebCall(config, host.limits, f"web-{uuid.uuid4().hex[:12]}")
        try:
            await _run(websocket, host, slot, call)
        finally:
            call.close()
            await call.peer.close()


async def _run(websocket: WebSocket, host: SessionHost, slot: CallSlot, call: WebCall) -> None:
    limits = host.limits
    try:
        with anyio.fail_after(limits.idle_timeout):
            first = await _receive(websocket, limits.max_message_bytes)
        if not isinstance(first, Offer):
            raise ProtocolError("bad_message", "the first message must be offer")
        answer = await call.peer.answer(first.sdp, call.track)
        await websocket.send_text(message("answer", sdp=answer, call_id=call.call_id))
        with anyio.fail_after(limits.idle_timeout):
            await call.wait_connected()
    except TimeoutError:
        await _finish(websocket, message("error", code="idle", message="the call was not set up in time"), CloseCode.NORMAL)
        return
    except MediaError as exc:
        await _finish(websocket, message("error", code="bad_offer", message=str(exc)), CloseCode.INVALID)
        return
    except ProtocolError as failure:
        await _finish(websocket, message("error", code=failure.code, message=str(failure)), failure.close)
        return
    except _Gone:
        return
    async with create_task_group() as tg:
        tg.start_soon(_listen, websocket, call, limits.max_message_bytes)
        reason = await slot.run(call)
        tg.cancel_scope.cancel()
    broken = call.failure
    if broken is not None:
        await _finish(websocket, message("error", code=broken.code, message=str(broken)), broken.close)
    else:
        await _finish(websocket, message("hangup", reason=reason), CloseCode.NORMAL)


async def _listen(websocket: WebSocket, call: WebCall, max_bytes: int) -> None:
    """The socket during the call: a ``hangup`` or a close ends it."""
    try:
        while not isinstance(await _receive(websocket, max_bytes), HangUp):
            pass
    except _Gone:
        pass
    except ProtocolError as failure:
        call.fail(failure)
    call.hang_up()


class _Gone(Exception):
    """The page closed the signalling socket."""


async def _receive(websocket: WebSocket, max_bytes: int) -> Offer | HangUp:
    try:
        event = await websocket.receive()
    except (WebSocketDisconnect, RuntimeError):
        raise _Gone from None
    if event["type"] == "websocket.disconnect":
        raise _Gone
    text = event.get("text")
    if text is None:
        raise ProtocolError("bad_message", "the signalling socket carries JSON text, not binary messages")
    return parse_signal(text, max_bytes)


async def _finish(websocket: WebSocket, last: str, code: CloseCode) -> None:
    """Send the last word and close; a page already gone is not an error."""
    try:
        await websocket.send_text(last)
        await websocket.close(int(code))
    except Exception:  # noqa: BLE001 - whatever the server stack raises, the page is gone
        pass
