"""Ending a call through Twilio's REST API: ``POST …/Calls/{CallSid}.json`` with
``Status=completed`` (twilio.com/docs/voice/api/call-resource#update-a-call-resource).

Closing the media stream alone would also end the call (nothing follows ``<Connect>`` in our
TwiML), but only once Twilio notices the closed socket; the REST call ends it at once and
says so, and is what a call started any other way needs. httpx is already a dependency.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

_SID = re.compile(r"^(AC|CA)[0-9a-fA-F]{32}$")


class HangUpFailed(Exception):
    """Twilio did not confirm the hang-up (one line, safe to log: no secret in it)."""


@dataclass(frozen=True, slots=True)
class TwilioAccount:
    api_base: str
    account_sid: str
    auth_token: str

    def __repr__(self) -> str:  # the token must never reach a log
        return f"TwilioAccount({self.api_base!r}, {self.account_sid!r})"


async def complete_call(account: TwilioAccount, call_sid: str, timeout: float) -> None:
    """Ask Twilio to end ``call_sid``; raises :class:`HangUpFailed`."""
    for sid in (account.account_sid, call_sid):
        if not _SID.match(sid):
            raise HangUpFailed(f"{sid[:40]!r} is not a Twilio SID")
    url = f"{account.api_base}/2010-04-01/Accounts/{account.account_sid}/Calls/{call_sid}.json"
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(url, data={"Status": "completed"},
                                         auth=(account.account_sid, account.auth_token))
    except httpx.HTTPError as exc:
        raise HangUpFailed(f"the REST API did not answer ({type(exc).__name__})") from None
    if response.status_code >= 300:
        raise HangUpFailed(f"the REST API refused: HTTP {response.status_code}: {_message(response)}")


def _message(response: httpx.Response) -> str:
    """Twilio's error text (its JSON ``message``), short."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:200]
    return response.text[:200]
