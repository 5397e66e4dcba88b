"""The unhappy-path script: which line is said, in which order, from the agent file's settings."""

from __future__ import annotations

from voiceflow.config.models import SilencePolicy, UnhappyPaths
from voiceflow.turns.unhappy import Line, UnhappyScript


def test_silence_reprompts_in_order_then_goodbye_and_an_answer_starts_over() -> None:
    script = UnhappyScript(UnhappyPaths(silence=SilencePolicy(reprompts=["Hello?", "Still there?"], goodbye="Bye.")))
    assert [script.on_silence(), script.on_silence(), script.on_silence()] == [
        Line("reprompt", "Hello?"), Line("reprompt", "Still there?"), Line("goodbye", "Bye."),
    ]
    script.caller_answered()
    assert script.on_silence() == Line("reprompt", "Hello?")


def test_silence_without_hang_up_keeps_listening_quietly() -> None:
    script = UnhappyScript(UnhappyPaths(silence=SilencePolicy(reprompts=[], hang_up=False)))
    assert script.on_silence() is None


def test_a_failed_turn_is_an_apology_an_empty_one_unclear_and_a_failed_apology_is_not_repeated() -> None:
    paths = UnhappyPaths()
    script = UnhappyScript(paths)
    assert script.for_caller_turn("hello", None) is None
    assert script.for_caller_turn("", None) == Line("unclear", paths.unclear)
    assert script.for_caller_turn("half a sen", "stt/x: boom") == Line("apology", paths.stage_failure, failure="stt/x: boom")
    assert script.after_failed_reply("reply", "llm: boom") == Line("apology", paths.stage_failure, failure="llm: boom")
    assert script.after_failed_reply("apology", "tts: boom") is None
    assert script.after_failed_reply("goodbye", "tts: boom") is None
    assert script.time_is_up() == Line("goodbye", paths.max_call_goodbye, interruptible=False)
    assert script.unavailable("vad: gone").failure == "vad: gone"
