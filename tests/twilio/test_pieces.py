"""The Twilio transport's small parts, each on its own: the 2:1 resampler, the request
signature, the stream ticket, held places, TwiML and the Media Streams messages."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from voiceflow.testing.twilio_caller import twilio_signature
from voiceflow_twilio import protocol, signature, twiml
from voiceflow_twilio.places import HeldPlaces
from voiceflow_twilio.protocol import Connected, Dtmf, Mark, Media, ProtocolError, Start, Stop
from voiceflow_twilio.rate import DELAY_SECONDS, Downsampler, Upsampler
from voiceflow_twilio.stream_token import StreamTickets

CALL = "CA" + "1" * 32
STREAM = "MZ" + "2" * 32
ACCOUNT = "AC" + "3" * 32


# --- resampling ---------------------------------------------------------------------------------


def tone(freq: float, rate: int, seconds: float = 1.0, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (level * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2")


def run_in_frames(resampler: Upsampler | Downsampler, pcm: np.ndarray, frame: int) -> tuple[np.ndarray, list[int]]:
    outs = [resampler(pcm[i : i + frame].tobytes()) for i in range(0, len(pcm), frame)]
    return np.frombuffer(b"".join(outs), dtype="<i2"), [len(o) for o in outs]


def level_db(samples: np.ndarray, reference: float) -> float:
    tail = samples[len(samples) // 4 :].astype(np.float64)
    return float(20 * np.log10(np.sqrt(np.mean(tail**2)) / reference + 1e-12))


def test_every_20_ms_in_gives_20_ms_out_at_once_both_ways() -> None:
    _, up = run_in_frames(Upsampler(), tone(1000, 8000), 160)
    _, down = run_in_frames(Downsampler(), tone(1000, 16000), 320)
    assert set(up) == {640} and set(down) == {320}  # bytes: 320 samples at 16 kHz, 160 at 8 kHz


def test_odd_chunks_keep_the_sample_grid() -> None:
    pcm = tone(700, 16000, 0.5)
    whole, _ = run_in_frames(Downsampler(), pcm, 320)
    ragged, _ = run_in_frames(Downsampler(), pcm, 77)
    assert np.array_equal(whole, ragged)


def test_the_phone_band_passes_and_what_would_alias_does_not() -> None:
    reference = 0.5 * 32767 / np.sqrt(2)
    for freq in (300, 1000, 3000, 3400):
        down, _ = run_in_frames(Downsampler(), tone(freq, 16000), 320)
        up, _ = run_in_frames(Upsampler(), tone(freq, 8000), 160)
        assert level_db(down, reference) > -0.5 and level_db(up, reference) > -0.5, freq
    for freq in (4500, 6000, 7500):  # would fold back to 3.5, 2 and 0.5 kHz
        down, _ = run_in_frames(Downsampler(), tone(freq, 16000), 320)
        assert level_db(down, reference) < -60, freq


def test_the_delay_is_the_constant_it_claims() -> None:
    click = np.zeros(1600, dtype="<i2")
    click[800] = 20000
    out, _ = run_in_frames(Upsampler(), click, 160)
    assert int(np.argmax(out)) == 1600 + round(DELAY_SECONDS * 16000)


def test_reset_forgets_the_dropped_audio() -> None:
    down = Downsampler()
    down(tone(440, 16000, 0.1).tobytes())
    down.reset()
    assert not any(np.frombuffer(down(bytes(640)), dtype="<i2"))


# --- the webhook signature ---------------------------------------------------------------------

DOCS_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOCS_FORM = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675310", "Digits": "1234",
             "From": "+14158675310", "To": "+18005551212"}
DOCS_SIGNATURE = "GvWf1cFY/Q7PnoempGyD5oXAezc="
"""The worked example of twilio.com/docs/usage/security (auth token 12345)."""


def test_the_documented_example_signs_as_twilio_says_and_so_does_the_fake_phone() -> None:
    assert signature.sign("12345", DOCS_URL, DOCS_FORM.items()) == DOCS_SIGNATURE
    assert twilio_signature("12345", DOCS_URL, DOCS_FORM) == DOCS_SIGNATURE
    assert signature.is_valid("12345", DOCS_URL, list(DOCS_FORM.items()), DOCS_SIGNATURE)


@pytest.mark.parametrize("change", ["token", "url", "field", "missing", "empty", "garbage"])
def test_anything_else_is_refused(change: str) -> None:
    token, url, form, presented = "12345", DOCS_URL, dict(DOCS_FORM), DOCS_SIGNATURE
    match change:
        case "token":
            token = "54321"
        case "url":
            url = DOCS_URL.replace("foo=1", "foo=2")
        case "field":
            form["Digits"] = "9999"
        case "missing":
            presented = None  # type: ignore[assignment]
        case "empty":
            presented = ""
        case "garbage":
            presented = "ünïcode"
    assert not signature.is_valid(token, url, list(form.items()), presented)


def test_twilio_may_sign_with_or_without_the_default_port() -> None:
    signed_with_port = signature.sign("12345", "https://mycompany.com:443/myapp.php", [])
    assert signature.is_valid("12345", "https://mycompany.com/myapp.php", [], signed_with_port)
    signed_without = signature.sign("12345", "https://mycompany.com/myapp.php", [])
    assert signature.is_valid("12345", "https://mycompany.com:443/myapp.php", [], signed_without)
    assert signature.port_spellings("http://127.0.0.1:8000/x") == ["http://127.0.0.1:8000/x"]


# --- the stream ticket ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_a_ticket_admits_its_call_once_within_its_time() -> None:
    clock = Clock()
    tickets = StreamTickets("phone", ttl=60, secret="auth-token", now=clock)
    ticket = tickets.issue(CALL)
    assert not tickets.admit(ticket, "CA" + "9" * 32)  # another call
    assert not tickets.admit(ticket[:-1] + ("0" if ticket[-1] != "0" else "1"), CALL)  # tampered
    assert not tickets.admit(None, CALL) and not tickets.admit("", CALL) and not tickets.admit("x.y", CALL)
    assert not StreamTickets("other-agent", ttl=60, secret="auth-token", now=clock).admit(ticket, CALL)
    assert tickets.admit(ticket, CALL)
    assert not tickets.admit(ticket, CALL)  # used


def test_a_ticket_expires_and_instances_sharing_the_auth_token_share_tickets() -> None:
    clock = Clock()
    issuer = StreamTickets("phone", ttl=30, secret="auth-token", now=clock)
    other_instance = StreamTickets("phone", ttl=30, secret="auth-token", now=clock)
    assert other_instance.admit(issuer.issue(CALL), CALL)
    late = issuer.issue("CA" + "4" * 32)
    clock.t += 32
    assert not other_instance.admit(late, "CA" + "4" * 32)
    # Without an auth token the key is the process's own.
    assert not StreamTickets("phone", ttl=30).admit(StreamTickets("phone", ttl=30).issue(CALL), CALL)


# --- places held between the webhook and the stream --------------------------------------------


class Slot:
    released = 0

    def release(self) -> None:
        self.released += 1


def test_a_held_place_is_claimed_once_or_given_back_when_no_stream_comes() -> None:
    clock = Clock()
    places = HeldPlaces(ttl=10, now=clock)
    first, second = Slot(), Slot()
    places.hold(CALL, first)  # type: ignore[arg-type]
    places.hold("CA" + "5" * 32, second)  # type: ignore[arg-type]
    assert places.claim(CALL) is first and places.claim(CALL) is None
    clock.t += 11
    places.sweep()
    assert second.released == 1 and first.released == 0 and len(places) == 0


def test_a_repeated_webhook_holds_one_place() -> None:
    places = HeldPlaces(ttl=10, now=Clock())
    first, again = Slot(), Slot()
    places.hold(CALL, first)  # type: ignore[arg-type]
    places.hold(CALL, again)  # type: ignore[arg-type]
    assert first.released == 1 and places.claim(CALL) is again


# --- TwiML ---------------------------------------------------------------------------------------


def test_the_answer_connects_a_stream_with_its_parameters_escaped() -> None:
    text = twiml.connect_stream("wss://x.example/agents/a/twilio/stream",
                                {"agent": "a", "caller": '+1 "<&>"', "voiceflow_ticket": "1.ab"})
    root = ElementTree.fromstring(text)
    stream = root.find("./Connect/Stream")
    assert root.tag == "Response" and stream is not None
    assert stream.get("url") == "wss://x.example/agents/a/twilio/stream"
    assert {p.get("name"): p.get("value") for p in stream.findall("Parameter")} == {
        "agent": "a", "caller": '+1 "<&>"', "voiceflow_ticket": "1.ab"}
    assert ElementTree.fromstring(twiml.reject_busy()).find("Reject").get("reason") == "busy"  # type: ignore[union-attr]


# --- Media Streams messages ---------------------------------------------------------------------


def start_message(**change: object) -> dict[str, object]:
    start: dict[str, object] = {
        "accountSid": ACCOUNT, "streamSid": STREAM, "callSid": CALL, "tracks": ["inbound"],
        "customParameters": {"agent": "a"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    start.update(change)
    return {"event": "start", "sequenceNumber": "1", "start": start, "streamSid": STREAM}


def test_twilios_messages_parse_as_twilio_sends_them() -> None:
    payload = base64.b64encode(bytes(range(160))).decode()
    assert protocol.parse('{"event":"connected","protocol":"Call","version":"1.0.0"}', 65536) == Connected("Call")
    assert protocol.parse(json.dumps(start_message()), 65536) == Start(STREAM, CALL, ACCOUNT, {"agent": "a"})
    media = {"event": "media", "sequenceNumber": "3", "streamSid": STREAM,
             "media": {"track": "inbound", "chunk": "2", "timestamp": "20", "payload": payload}}
    assert protocol.parse(json.dumps(media), 65536) == Media(bytes(range(160)), 20)
    assert protocol.parse(json.dumps({"event": "mark", "sequenceNumber": "4", "streamSid": STREAM,
                                      "mark": {"name": "17"}}), 65536) == Mark("17")
    assert protocol.parse(json.dumps({"event": "dtmf", "streamSid": STREAM, "sequenceNumber": "5",
                                      "dtmf": {"track": "inbound_track", "digit": "#"}}), 65536) == Dtmf("#")
    assert protocol.parse(json.dumps({"event": "stop", "sequenceNumber": "6", "streamSid": STREAM,
                                      "stop": {"accountSid": ACCOUNT, "callSid": CALL}}), 65536) == Stop()


@pytest.mark.parametrize("text", [
    "not json", "[1]", '{"event": "hello"}', '{"event": "media"}',
    '{"event": "media", "media": {"payload": "!!!"}}',
    '{"event": "media", "media": {"payload": "", "timestamp": "²"}}',
    '{"event": "mark", "mark": {}}', '{"event": "dtmf", "dtmf": {"digit": "x"}}',
    json.dumps(start_message(mediaFormat={"encoding": "audio/l16", "sampleRate": 16000, "channels": 1})),
    json.dumps(start_message(callSid="CA123")), json.dumps(start_message(customParameters={"a": 1})),
])
def test_malformed_messages_are_protocol_errors(text: str) -> None:
    with pytest.raises(ProtocolError):
        protocol.parse(text, 65536)


def test_an_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError, match="over the limit"):
        protocol.parse(" " * 2000, 1024)


def test_our_messages_are_twilios_shapes() -> None:
    assert json.loads(protocol.media(STREAM, b"\xff\x7f")) == {
        "event": "media", "streamSid": STREAM, "media": {"payload": base64.b64encode(b"\xff\x7f").decode()}}
    assert json.loads(protocol.mark(STREAM, "3")) == {"event": "mark", "streamSid": STREAM, "mark": {"name": "3"}}
    assert json.loads(protocol.clear(STREAM)) == {"event": "clear", "streamSid": STREAM}
