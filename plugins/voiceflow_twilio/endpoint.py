"""The two routes Twilio reaches: the voice webhook (``POST /twilio/voice``: admit the call,
answer TwiML that opens the media stream) and the media stream itself (``/twilio/stream``).

Imported only when the transport is served (it needs Starlette), never when the plugin is merely
listed or its settings validated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import parse_qsl

import anyio
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from voiceflow.serving.api import ASGIApp, CloseCode, Refused, ServingLimits, SessionHost
from voiceflow_twilio import signature, twiml
from voiceflow_twilio.call import CallObserver, Socket, TwilioCall, receive_text
from voiceflow_twilio.config import STREAM_PATH, VOICE_PATH, TwilioConfig
from voiceflow_twilio.places import HeldPlaces
from voiceflow_twilio.protocol import Connected, ProtocolError, Start, parse
from voiceflow_twilio.rest import HangUpFailed, TwilioAccount, complete_call
from voiceflow_twilio.stream_token import PARAMETER, StreamTickets

log = structlog.get_logger("voiceflow.twilio")

_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
_FORM = "application/x-www-form-urlencoded"

class TwilioEndpoint:
    """The routes of one agent. ``observers`` are told of each call before it runs."""

    def __init__(self, host: SessionHost, config: TwilioConfig, observers: Sequence[CallObserver]) -> None:
        self.host = host
        self.config = config
        self.observers = observers
        token = config.auth_token.get_secret_value() if config.auth_token else None
        self.auth_token = token
        self.tickets = StreamTickets(host.agent_name, config.ticket_ttl, token)
        self.places = HeldPlaces(config.ticket_ttl)

    def app(self) -> ASGIApp:
        return Starlette(routes=[
            Route(VOICE_PATH, self.voice, methods=["POST"]),
            WebSocketRoute(STREAM_PATH, self.stream),
        ])

    # --- the webhook ------------------------------------------------------------------------

    async def voice(self, request: Request) -> Response:
        """A call came in: check it is Twilio asking, admit it, open the media stream."""
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != _FORM:
            return PlainTextResponse(f"expected {_FORM}", status_code=415)
        body = await _body(request, self.host.limits.max_message_bytes)
        if body is None:
            return PlainTextResponse("request too large", status_code=413)
        try:
            params = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            return PlainTextResponse("the form is not UTF-8", status_code=400)
        if self.auth_token is not None and not signature.is_valid(
                self.auth_token, self._signed_url(request), params, request.headers.get(signature.HEADER)):
            log.warning("webhook refused: missing or wrong X-Twilio-Signature", agent=self.host.agent_name)
            return PlainTextResponse("invalid X-Twilio-Signature", status_code=403)
        fields = dict(params)
        call_sid = fields.get("CallSid", "")
        if not _CALL_SID.match(call_sid):
            return PlainTextResponse("CallSid missing or malformed", status_code=400)
        try:
            slot = self.host.admit()
        except Refused as refused:
            log.info("call refused", agent=self.host.agent_name, reason=refused.reason.value)
            return Response(twiml.reject_busy(), media_type=twiml.CONTENT_TYPE)
        self.places.hold(call_sid, slot)
        answer = twiml.connect_stream(self._stream_url(request), {
            "agent": self.host.agent_name,
            "caller": fields.get("From", ""),
            PARAMETER: self.tickets.issue(call_sid),
        })
        log.info("call answered", agent=self.host.agent_name, call_sid=call_sid)
        return Response(answer, media_type=twiml.CONTENT_TYPE)

    def _public_base(self, request: Request) -> str:
        return self.config.public_url or f"{request.url.scheme}://{request.url.netloc}"

    def _signed_url(self, request: Request) -> str:
        """The URL Twilio requested, which is what it signed."""
        if self.config.public_url is None:
            return str(request.url)
        query = request.url.query
        return self.config.public_url + request.url.path + (f"?{query}" if query else "")

    def _stream_url(self, request: Request) -> str:
        base = self._public_base(request)
        scheme, rest = base.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{request.scope.get('root_path', '')}{STREAM_PATH}"

    # --- the media stream -------------------------------------------------------------------

    async def stream(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            start = await handshake(websocket, self.host.limits)
        except ProtocolError as failure:
            log.warning("media stream refused", agent=self.host.agent_name, code=failure.code, detail=str(failure))
            await _close(websocket, CloseCode.INVALID)
            return
        if start is None:
            return  # gone before it started
        if not self.tickets.admit(start.parameters.get(PARAMETER), start.call_sid):
            log.warning("media stream refused: no valid ticket", agent=self.host.agent_name)
            await _close(websocket, CloseCode.POLICY)
            return
        slot = self.places.claim(start.call_sid)
        if slot is None:
            try:
                slot = self.host.admit()
            except Refused as refused:
                log.info("call refused", agent=self.host.agent_name, reason=refused.reason.value)
                await _close(websocket, CloseCode.TRY_AGAIN_LATER)  # nothing follows <Connect>: the call ends
                return
        with slot:
            call = TwilioCall(websocket, start, self.host.limits, self.config)
            for observe in self.observers:
                observe(call)
            try:
                await slot.run(call)
            finally:
                call.close()
        if call.failure is not None:
            # Say why on the stream that carried the bad message before the REST hang-up, which
            # makes Twilio close the stream itself (with 1000) and would race our 1007.
            await _close(websocket, CloseCode.INVALID)
        if not call.caller_hung_up:
            await self._hang_up(call)
        if call.failure is None:
            await _close(websocket, CloseCode.NORMAL)

    async def _hang_up(self, call: TwilioCall) -> None:
        """The agent ended the call: tell Twilio, so the phone hangs up now."""
        if self.auth_token is None:
            log.info("no auth_token: the call ends as the stream closes", call_id=call.call_id)
            return
        account = TwilioAccount(self.config.api_base, self.config.account_sid or call.start.account_sid,
                                self.auth_token)
        try:
            await complete_call(account, call.start.call_sid, self.config.hangup_timeout)
        except HangUpFailed as exc:
            log.warning("hang-up through the REST API failed; closing the stream ends the call",
                        call_id=call.call_id, error=str(exc))
        else:
            log.info("hung up", call_id=call.call_id)


async def handshake(socket: Socket, limits: ServingLimits) -> Start | None:
    """``connected`` then ``start``, within the idle timeout; ``None`` if the socket closed."""
    try:
        with anyio.fail_after(limits.idle_timeout):
            for _ in range(2):
                text = await receive_text(socket)
                if text is None:
                    return None
                match parse(text, limits.max_message_bytes):
                    case Start() as start:
                        return start
                    case Connected():
                        continue
                    case other:
                        raise ProtocolError("bad_message", f"{type(other).__name__.lower()} before start")
    except TimeoutError:
        raise ProtocolError("idle", f"no start within {limits.idle_timeout:g} s") from None
    raise ProtocolError("bad_message", "connected twice")


async def _close(websocket: WebSocket, code: int) -> None:
    """Close the stream; Twilio already gone is not an error."""
    try:
        await websocket.close(code)
    except Exception:  # noqa: BLE001 - whatever the server stack raises, the socket is closed
        pass


async def _body(request: Request, limit: int) -> bytes | None:
    """The request body, or None if it is larger than ``limit`` bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
