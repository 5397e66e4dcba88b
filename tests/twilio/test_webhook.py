"""Who may call: the webhook's TwiML answer, Twilio's request signature, the stream's ticket, the
access token, admission. On loopback, through the real serving stack."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

import pytest
from twilio_harness import finished_calls, phone_agent, webhook
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from voiceflow.testing.fake_twilio import ACCOUNT_SID, FakeTwilio
from voiceflow.testing.served import served_agents
from voiceflow.testing.twilio_caller import CallRejected, TwilioCaller, agent_went_quiet, new_sid
from voiceflow_twilio.stream_token import PARAMETER

pytestmark = pytest.mark.anyio


def stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    stream = ElementTree.fromstring(twiml).find("./Connect/Stream")
    assert stream is not None
    return str(stream.get("url")), {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}


async def test_the_answer_opens_a_two_way_stream_to_this_agent_with_the_caller_and_a_ticket(
        twilio: FakeTwilio) -> None:
    registry, agent = phone_agent(twilio)
    async with served_agents([agent], registry) as server:
        response = await TwilioCaller(webhook(server, agent), twilio=twilio, caller="+15551230000").answer()
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/xml")
    url, parameters = stream_of(response.text)
    assert url == "ws" + server.base_url.removeprefix("http") + "/agents/phone/twilio/stream"
    assert parameters["agent"] == "phone" and parameters["caller"] == "+15551230000"
    assert parameters[PARAMETER]


@pytest.mark.parametrize("how", ["wrong token", "no signature", "another url"])
async def test_a_webhook_request_not_signed_by_twilio_is_refused(twilio: FakeTwilio, how: str) -> None:
    registry, agent = phone_agent(twilio, serving={"max_sessions": 1})
    async with served_agents([agent], registry) as server:
        url = webhook(server, agent)
        match how:
            case "wrong token":
                forged = TwilioCaller(url, auth_token="not-the-token")
            case "no signature":
                forged = TwilioCaller(url)
            case _:
                forged = TwilioCaller(url, twilio=twilio, sign_url=url + "?x=1")
        response = await forged.answer()
        assert response.status_code == 403 and "<Stream" not in response.text
        # It took no place: the one call this agent may have still gets through.
        async with TwilioCaller(url, twilio=twilio) as phone:
            await phone.wait_for(agent_went_quiet())


async def test_behind_a_public_url_twilio_signs_that_address_and_streams_to_wss(twilio: FakeTwilio) -> None:
    registry, agent = phone_agent(twilio, {"public_url": "https://voice.example.com/"})
    async with served_agents([agent], registry) as server:
        local = webhook(server, agent)
        public = "https://voice.example.com/agents/phone/twilio/voice"
        good = await TwilioCaller(local, twilio=twilio, sign_url=public).answer()
        signed_locally = await TwilioCaller(local, twilio=twilio).answer()
    assert good.status_code == 200 and signed_locally.status_code == 403
    assert stream_of(good.text)[0] == "wss://voice.example.com/agents/phone/twilio/stream"


async def test_with_an_access_token_twilio_still_gets_in_by_signature_and_ticket(twilio: FakeTwilio) -> None:
    registry, agent = phone_agent(twilio)
    async with served_agents([agent], registry, token="operator-secret") as server:
        async with TwilioCaller(webhook(server, agent), twilio=twilio) as phone:  # no bearer token
            await phone.wait_for(agent_went_quiet())
        assert (await finished_calls(server))[0].timeline.turns[0].outcome == "completed"


async def test_without_an_auth_token_the_webhook_stays_behind_the_access_token() -> None:
    registry, agent = phone_agent(None)
    async with served_agents([agent], registry, token="operator-secret") as server:
        url = webhook(server, agent)
        refused = await TwilioCaller(url).answer()
        async with TwilioCaller(url + "?access_token=operator-secret") as phone:  # as in the number's webhook URL
            await phone.wait_for(agent_went_quiet())
    assert refused.status_code == 401
    assert phone.report.seconds_heard() > 0


@pytest.mark.parametrize("ticket", ["missing", "forged", "another call's", "used"])
async def test_a_media_stream_without_its_calls_ticket_is_refused_before_any_call(
        twilio: FakeTwilio, ticket: str) -> None:
    registry, agent = phone_agent(twilio)
    async with served_agents([agent], registry, token="operator-secret") as server:
        answered = TwilioCaller(webhook(server, agent), twilio=twilio)
        response = await answered.answer()
        url, parameters = stream_of(response.text)
        call_sid = answered.call_sid
        match ticket:
            case "missing":
                del parameters[PARAMETER]
            case "forged":
                parameters[PARAMETER] = parameters[PARAMETER][:-4] + "0000"
            case "another call's":
                call_sid = new_sid("CA")
            case "used":
                async with TwilioCaller(webhook(server, agent), twilio=twilio, call_sid=call_sid):
                    pass  # the webhook again (Twilio may retry it), then a whole call with the ticket
                url, parameters = stream_of((await answered.answer()).text)
                parameters[PARAMETER] = stream_of(response.text)[1][PARAMETER]
        code = await open_stream(url, call_sid, parameters)
        assert code == 1008
        assert len(server.results) == (1 if ticket == "used" else 0)


async def open_stream(url: str, call_sid: str, parameters: dict[str, str]) -> int | None:
    """Twilio's first two messages on a stream; the close code the server answers with."""
    stream_sid = new_sid("MZ")
    async with connect(url) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": {
            "accountSid": ACCOUNT_SID, "streamSid": stream_sid, "callSid": call_sid, "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
        return ws.close_code


async def test_beyond_max_sessions_the_call_is_rejected_with_a_busy_tone(twilio: FakeTwilio) -> None:
    registry, agent = phone_agent(twilio, serving={"max_sessions": 1})
    async with served_agents([agent], registry) as server:
        async with TwilioCaller(webhook(server, agent), twilio=twilio) as first:
            await first.wait_for(agent_went_quiet())
            with pytest.raises(CallRejected) as rejected:
                await TwilioCaller(webhook(server, agent), twilio=twilio).dial()
        assert first.report.seconds_heard() > 0
    root = ElementTree.fromstring(rejected.value.body)
    reject = root.find("Reject")
    assert reject is not None and reject.get("reason") == "busy"
