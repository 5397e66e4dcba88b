"""A fake Twilio REST API on 127.0.0.1: the part of it a voice transport calls to hang up.

``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` with the form field
``Status=completed`` (or ``canceled``) and HTTP basic auth (account SID, auth token) ends a call,
answering with the call resource as JSON, as Twilio does. The errors are Twilio's: 401 with error
20003 for wrong credentials (or an account in the path that is not the one authenticated), 404
with 20404 for a call the fake does not know, 400 with 21218 for a missing or unknown status.
Every request is recorded, authenticated or not, for tests to look at::

    async with FakeTwilio() as twilio:
        twilio.start_call(call_sid)                     # the fake knows the call
        agent config: transport: {provider: twilio, auth_token: twilio.auth_token, api_base: twilio.api_base}
        ...
        assert twilio.hang_ups[0].call_sid == call_sid and twilio.status(call_sid) == "completed"

``fail_with`` makes every hang-up answer that HTTP status instead (Twilio having a bad day).
:class:`voiceflow.testing.twilio_caller.TwilioCaller`, given the fake, watches its call's status
and, like Twilio's media servers, sends ``stop`` and closes the stream once the call is completed.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from voiceflow.testing._loopback_server import LoopbackServer

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-twilio-auth-token-0123456789"
_CALL_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Calls/(?P<call>[^/]+)\.json$")


@dataclass(frozen=True, slots=True)
class CallUpdate:
    """One request to the Calls resource, as received."""

    account_sid: str
    """From the path."""
    call_sid: str
    username: str | None
    """Basic auth's user name (the account SID, for a correct client)."""
    authenticated: bool
    """The user name and password are the account's SID and auth token, and the path's account."""
    form: dict[str, str]
    status_code: int
    received_at: float
    """``time.monotonic()`` when it arrived (comparable with the test loop's clock on asyncio)."""


class FakeTwilio(LoopbackServer):
    label = "fake twilio"

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN, *,
                 fail_with: int | None = None) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.fail_with = fail_with
        self._calls: dict[str, str] = {}
        self._requests: list[CallUpdate] = []
        self._lock = threading.Lock()

    @property
    def api_base(self) -> str:
        """What the transport's ``api_base`` should be."""
        return f"http://127.0.0.1:{self.port}"

    def start_call(self, call_sid: str) -> None:
        """A call the fake knows, in progress."""
        with self._lock:
            self._calls[call_sid] = "in-progress"

    def status(self, call_sid: str) -> str | None:
        with self._lock:
            return self._calls.get(call_sid)

    @property
    def requests(self) -> list[CallUpdate]:
        with self._lock:
            return list(self._requests)

    @property
    def hang_ups(self) -> list[CallUpdate]:
        """Authenticated requests that ended a call."""
        return [r for r in self.requests if r.status_code == 200]

    # --- the app, on the server's thread ---------------------------------------------------

    def _asgi_app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def calls(request: Request) -> JSONResponse:
            form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
            status, body = self._update(request.url.path, request.headers.get("authorization"), form)
            return JSONResponse(body, status_code=status)

        return Starlette(routes=[Route("/{path:path}", calls, methods=["POST"])])

    def _update(self, path: str, authorization: str | None, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        match = _CALL_PATH.match(path)
        if match is None:
            return 404, _error(20404, "The requested resource was not found", 404)
        account, call = match["account"], match["call"]
        username, password = _basic(authorization)
        authenticated = (username == self.account_sid == account and password == self.auth_token)
        with self._lock:
            if not authenticated:
                status, body = 401, _error(20003, "Authentication Error - invalid username", 401)
            elif self.fail_with is not None:
                status, body = self.fail_with, _error(20500, "Internal Server Error", self.fail_with)
            elif call not in self._calls:
                status, body = 404, _error(20404, f"The requested resource {path} was not found", 404)
            elif form.get("Status") not in ("completed", "canceled"):
                status, body = 400, _error(21218, "Invalid Status: expected completed or canceled", 400)
            else:
                self._calls[call] = "completed"
                status, body = 200, {"sid": call, "account_sid": account, "status": "completed",
                                     "api_version": "2010-04-01", "uri": path}
            self._requests.append(CallUpdate(account, call, username, authenticated, form, status, time.monotonic()))
        return status, body


def _basic(authorization: str | None) -> tuple[str | None, str | None]:
    scheme, _, credential = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        username, _, password = base64.b64decode(credential, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError):
        return None, None
    return username, password


def _error(code: int, message: str, status: int) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}
