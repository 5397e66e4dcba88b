"""Recorded menus: what turns/ivr.py recognises, parses and decides, and keys played in band."""

from __future__ import annotations

import anyio
import pytest
from pydantic import ValidationError

from voiceflow.config.ivr import IvrPolicy
from voiceflow.frames import SAMPLE_RATE
from voiceflow.g711 import MULAW_RATE, mulaw_decode
from voiceflow.metrics.timeline import TurnTimeline
from voiceflow.providers import OutFrame
from voiceflow.runtime.keys import key_frames, play_keys
from voiceflow.runtime.reply import PlaybackMark, Reply
from voiceflow.testing.dtmf_detector import detected
from voiceflow.turns.ivr import IvrAction, IvrWatch, MenuOption, menu_options

ACME = "Thank you for calling Acme. For sales, press one. For support, press two."


@pytest.mark.parametrize(
    ("text", "options"),
    [
        (ACME, [("sales", "1"), ("support", "2")]),
        ("thank you for calling acme for sales press one for support press two", [("sales", "1"), ("support", "2")]),
        ("Press 2 for technical support, press 3 for billing, or press zero to speak to an operator.",
         [("technical support", "2"), ("billing", "3"), ("an operator", "0")]),
        ("To hear these options again, press star. For the pound key, press pound.",
         [("hear these options again", "*"), ("the pound key", "#")]),
        ("Please listen carefully as our menu options have changed.", []),
    ],
)
def test_options_are_parsed_with_keys_in_words_or_numerals(text: str, options: list[tuple[str, str]]) -> None:
    assert menu_options(text) == [MenuOption(option, key) for option, key in options]


@pytest.mark.parametrize(
    "text",
    [ACME, "Para español, oprima nueve.", "Please listen carefully as our menu options have changed.",
     "Your call is important to us. Please stay on the line.", "Press or say one.",
     "To continue in English, press 1.", "Welcome to Acme Bank."],
)
def test_recorded_prompts_are_recognised(text: str) -> None:
    assert IvrWatch(IvrPolicy).is_menu(text)


@pytest.mark.parametrize(
    "text", ["Hi, this is Jane in support, how can I help you?", "I pressed one but nothing happened.",
             "My number is one two three.", "Should I press one?", "You've reached the wrong person.",
             "Please listen carefully to what I say.", "I said thank you for calling me back.", ""],
)
def test_people_are_not_menus(text: str) -> None:
    assert not IvrWatch(IvrPolicy).is_menu(text)


def test_detection_can_be_off_and_extended() -> None:
    assert not IvrWatch(lambda: IvrPolicy(detect=False)).is_menu(ACME)
    assert IvrWatch(lambda: IvrPolicy(phrases=[r"\bthis call may be recorded\b"])).is_menu("This call may be recorded.")


def test_the_decision_follows_the_file() -> None:
    chose = IvrWatch(lambda: IvrPolicy(choose=["billing", "support"])).decide(ACME)
    assert (chose.action, chose.keys, chose.chosen) == (IvrAction.PRESS, "2", "support")
    assert IvrWatch(lambda: IvrPolicy(choose=["billing"])).decide(ACME).action is IvrAction.WAIT
    fixed = IvrWatch(lambda: IvrPolicy(press="0")).decide(ACME)
    assert (fixed.action, fixed.keys, fixed.chosen) == (IvrAction.PRESS, "0", None)
    assert IvrWatch(lambda: IvrPolicy(say="Representative.")).decide(ACME).action is IvrAction.SAY
    assert IvrWatch(IvrPolicy).decide(ACME).action is IvrAction.WAIT
    assert "pressed 2 for 'support'" in chose.describe()
    assert chose.as_dict()["options"] == [{"option": "sales", "key": "1"}, {"option": "support", "key": "2"}]


def test_keys_stop_after_max_presses() -> None:
    watch = IvrWatch(lambda: IvrPolicy(press="0", max_presses=2))
    sent: list[str] = []
    assert watch.act(watch.decide(ACME), lambda keys: False).sent == "in band"
    assert watch.act(watch.decide(ACME), lambda keys: sent.append(keys) is None).sent == "out of band"
    assert sent == ["0"]
    last = watch.decide(ACME)
    assert last.action is IvrAction.WAIT and "max_presses" in last.why
    assert watch.act(last, lambda keys: pytest.fail("nothing to press")) is last
    assert (last.turn_kind, last.outcome) == ("ivr", "ignored")


def test_bad_settings_are_refused_with_the_field() -> None:
    with pytest.raises(ValidationError, match="phrases"):
        IvrPolicy(phrases=["(unclosed"])
    with pytest.raises(ValidationError, match="press"):
        IvrPolicy(press="1x")
    with pytest.raises(ValidationError, match="choose"):
        IvrPolicy(choose=["  ,"])


def test_mulaw_lines_get_wire_frames_of_the_keys() -> None:
    frames = key_frames("29", "mulaw/8000")
    assert all(wire is not None and len(wire) == MULAW_RATE // 50 for _, wire in frames)
    assert detected(mulaw_decode(b"".join(w for _, w in frames if w)), MULAW_RATE) == "29"
    assert all(wire is None for _, wire in key_frames("29", None))
    assert detected(b"".join(pcm for pcm, _ in key_frames("29", None)), SAMPLE_RATE) == "29"


@pytest.mark.anyio
async def test_play_keys_ends_once_the_last_frame_is_heard() -> None:
    played: list[OutFrame] = []

    class Line:
        wire_format = "mulaw/8000"

        async def play(self, out: OutFrame) -> None:
            played.append(out)
            assert isinstance(out.mark, PlaybackMark)
            out.mark.heard(len(played) * 0.02)

    reply = Reply(1, "keys", False, TurnTimeline(0, "keys"))
    with anyio.fail_after(5):
        await play_keys(reply, "5", Line())  # type: ignore[arg-type]
    assert reply.finished.is_set() and reply.heard_text() == "[keys 5]"
    assert detected(mulaw_decode(b"".join(o.wire or b"" for o in played)), MULAW_RATE) == "5"
