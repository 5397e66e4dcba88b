"""The core of the agent file: everything that is not a provider's own settings.

Provider stages (``vad``, ``stt``, ``llm``, ``tts``, ``transport``) are added by
:func:`voiceflow.config.compose.compose_agent_model` from whatever plugins are installed, so this
module never imports a plugin. Defaults here are the ones we would ship to a phone agent; each is
documented in docs/configuration.md, which is generated from these models.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import Field, field_validator, model_validator

from voiceflow.config.base import Strict
from voiceflow.config.echo import EchoDefence
from voiceflow.config.endpointing import AdaptiveSilence as AdaptiveSilence
from voiceflow.config.endpointing import Endpointing
from voiceflow.config.endpointing import TranscriptRule as TranscriptRule
from voiceflow.config.endpointing import TranscriptRules as TranscriptRules
from voiceflow.config.endpointing import TurnModel as TurnModel
from voiceflow.config.ivr import IvrPolicy
from voiceflow.config.serving import Serving
from voiceflow.config.tools import RESET_STATE, ToolConfig
from voiceflow.metrics.budget import LatencyBudget


class Utterance(Strict):
    """A fixed line the agent says, with its own barge-in rule."""

    text: str = Field(min_length=1, description="What the agent says, word for word.")
    interruptible: bool = Field(
        True, description="Whether the caller can talk over this line (false for legal notices)."
    )


class Prompt(Strict):
    system: str = Field(min_length=1, description="The LLM's system prompt.")
    greeting: Utterance | None = Field(
        None, description="Said when the call starts, before the caller speaks. Omit for none."
    )


class BargeInWhileThinking(Strict):
    """Caller speech while the agent prepares its reply (nothing of it heard yet): the caller
    most likely had not finished, so less is needed to yield."""

    min_speech: float = Field(0.2, ge=0, le=5, description="Voiced seconds before the agent yields.")
    min_words: int = Field(0, ge=0, le=20, description="Words (interim transcripts) before it yields; 0: voice alone.")


BACKCHANNELS = ["mhm", "mm", "mm-hm", "mmhmm", "uh-huh", "uh huh", "hmm", "yeah", "yep", "okay", "ok",
                "right", "sure", "alright", "i see", "got it", "cool", "great"]
INTERRUPT_PHRASES = ["stop", "wait", "no", "hold on", "hang on", "excuse me", "sorry", "actually"]


class BargeIn(Strict):
    """When the caller's speech interrupts the agent."""

    enabled: bool = Field(True, description="Whether the caller can interrupt the agent at all.")
    min_speech: float = Field(
        0.35,
        ge=0,
        le=5,
        description="The caller must speak this long over the agent before it stops: shorter "
        "sounds (\"mm-hm\", a cough) do not interrupt.",
    )
    min_words: int = Field(
        0,
        ge=0,
        le=20,
        description="Words the caller must have said (from interim transcripts) before the agent "
        "stops; 0: voice alone decides. A recogniser without interim transcripts never gives "
        "words in time: voice then decides after min_speech + words_wait.",
    )
    words_wait: float = Field(
        0.8, ge=0, le=10, description="Longest voiced time past min_speech to wait for min_words."
    )
    while_thinking: BargeInWhileThinking = Field(
        BargeInWhileThinking(), description="The same judgement while the agent is still preparing its reply."
    )
    backchannels: list[str] = Field(
        default_factory=lambda: list(BACKCHANNELS),
        max_length=200,
        description="Said over the agent, these never interrupt it (whole utterance, any mix of them).",
    )
    interrupt_phrases: list[str] = Field(
        default_factory=lambda: list(INTERRUPT_PHRASES),
        max_length=200,
        description="These interrupt at once, however short (as whole words anywhere in what was said).",
    )
    pause_on_speech: bool = Field(
        True,
        description="Go silent the moment the caller starts speaking over the agent; play on from "
        "where it stopped if it was a backchannel, noise or echo, stop for good if it was an "
        "interruption (transports that cannot pause talk on until the decision).",
    )
    pause_at_onset: bool = Field(
        True,
        description="With pause_on_speech: go silent at the first voiced window the VAD hears, "
        "before its start window (start_secs) has confirmed speech: a caller who cuts in is "
        "heard that much sooner (0.1 s with Silero's default). A click or a breath then costs "
        "the caller under 0.15 s of the agent's silence, after which it plays on from where it "
        "stopped. Only where the echo canceller (echo.cancel) knows that the line brings none "
        "of the agent's voice back (usually within half a second of agent speech): on a line "
        "that echoes, or without it, the agent's own echo would hold it at every word.",
    )
    echo_guard: bool = Field(
        True,
        description="Caller \"speech\" whose words are the agent's own recent words (its voice "
        "coming back through a speakerphone) never interrupts.",
    )
    ignore_first: float = Field(
        0.0,
        ge=0,
        le=10,
        description="Seconds at the start of each agent reply during which speech never "
        "interrupts (echo warm-up on speakerphones).",
    )
    echo: EchoDefence = Field(
        EchoDefence(), description="Keeping the agent's own voice, coming back on the line, from being taken for the caller."
    )


class TurnTakingPatch(Strict):
    """Overrides for one conversation state; unset fields inherit from the agent's defaults."""

    endpointing: Endpointing | None = None
    barge_in: BargeIn | None = None


class TurnTaking(Strict):
    endpointing: Endpointing = Field(Endpointing(), description="When the caller's turn is over.")
    barge_in: BargeIn = Field(BargeIn(), description="When caller speech interrupts the agent.")
    states: dict[str, TurnTakingPatch] = Field(
        default_factory=dict,
        description="Per-conversation-state overrides, e.g. a longer min_silence while the caller "
        "reads out a phone number.",
    )

    def for_state(self, state: str | None) -> TurnTaking:
        """The effective settings in ``state``: the state's patch over the agent's defaults."""
        patch = self.states.get(state or "")
        if patch is None:
            return self
        return TurnTaking(
            endpointing=_overlay(self.endpointing, patch.endpointing),
            barge_in=_overlay(self.barge_in, patch.barge_in),
            states=self.states,
        )


_M = TypeVar("_M", bound=Strict)


def _overlay(base: _M, patch: _M | None) -> _M:
    """``base`` with the fields the file set in ``patch``: a state that only sets ``min_silence``
    keeps the agent's own ``max_wait``, not the model's default."""
    if patch is None:
        return base
    update = {}
    for name in patch.model_fields_set:
        mine, theirs = getattr(base, name), getattr(patch, name)
        # A state that sets one knob of a nested section keeps the agent's other knobs of it.
        update[name] = _overlay(mine, theirs) if isinstance(mine, Strict) and type(mine) is type(theirs) else theirs
    return base.model_copy(update=update)


class SilencePolicy(Strict):
    """What to do when the caller goes quiet after the agent has finished speaking."""

    reprompt_after: float = Field(
        8.0, gt=0, le=600, description="Seconds of caller silence before a re-prompt."
    )
    reprompts: list[str] = Field(
        default_factory=lambda: ["Are you still there?"],
        description="Said in order, one per silence; when they run out the agent says goodbye.",
    )
    goodbye: str = Field(
        "I haven't heard from you, so I'll end the call now. Goodbye!",
        description="Said after the last re-prompt went unanswered.",
    )
    hang_up: bool = Field(True, description="Hang up after the goodbye (false: keep listening).")


HOLD_PHRASES = ["hold on", "hang on", "one moment", "one second", "one sec", "just a moment", "just a second",
                "just a sec", "just a minute", "give me a second", "give me a minute", "bear with me",
                "wait a second", "wait a minute", "let me check"]


class HoldPolicy(Strict):
    """When the caller asks the agent to wait, or puts it on hold with music."""

    phrases: list[str] = Field(
        default_factory=lambda: list(HOLD_PHRASES),
        max_length=200,
        description="A caller turn containing one of these asks the agent to wait: it says `say` and "
        "waits quietly (no re-prompts, no hang-up) for up to `max_seconds`.",
    )
    say: str = Field("Sure, take your time.", min_length=1, max_length=500, description="The answer to a hold request.")
    max_seconds: float = Field(
        300, gt=0, le=3600, description="The longest quiet wait on hold before the usual silence re-prompts resume."
    )
    detect_music: bool = Field(
        True,
        description="Music or tones heard as a caller turn are never answered (the agent waits on hold "
        "instead). See docs/turn-taking.md for what the detector can and cannot tell.",
    )
    music_line: str | None = Field(
        None,
        max_length=500,
        description="Said once when music starts while the agent waits (e.g. \"I'll hold.\"); unset: stay quiet.",
    )


class UnhappyPaths(Strict):
    silence: SilencePolicy = Field(SilencePolicy(), description="Re-prompts and goodbye when the caller goes quiet.")
    hold: HoldPolicy = Field(HoldPolicy(), description="Waiting for a caller who asked to hold, or put the agent on hold.")
    ivr: IvrPolicy = Field(IvrPolicy(), description="Recorded phone menus: press a key, say a line, or wait for a person.")
    stage_failure: str = Field(
        "Sorry, I'm having trouble right now. Could you say that again?",
        description="Said when every provider of a stage's chain failed for this turn.",
    )
    unclear: str = Field(
        "Sorry, I didn't catch that. Could you say it again?",
        description="Said when the caller spoke but the transcript came back empty, or too unsure "
        "(min_confidence).",
    )
    min_confidence: float = Field(
        0.2,
        ge=0,
        le=1,
        description="A turn whose recogniser confidence is below this is not answered: the caller "
        "hears `unclear` instead (a mis-hearing answered is worse than a question repeated). 0: off. "
        "A turn's confidence is its finals' geometric mean weighted by their words, so a greeting "
        "scored low does not sink the clear question after it. Whisper scores a lone short word "
        "(\"Hi!\") 0.13-0.25, a clear question ~0.7, and noise it makes words of lower; recognisers "
        "that report no confidence are never caught by it.",
    )
    unavailable: str = Field(
        "Sorry, I can't take your call right now. Please try again later. Goodbye!",
        description="Said before hanging up when the call cannot be served at all: no provider of "
        "a stage could start (after fallbacks), or the voice detector failed mid-call.",
    )
    max_call_seconds: float = Field(
        1800, gt=0, le=86_400, description="Longest call before the agent ends it."
    )
    max_call_goodbye: str = Field(
        "We've reached the time limit for this call. Goodbye!",
        description="Said (not interruptible) when max_call_seconds is reached; then the call ends.",
    )


class Chunking(Strict):
    """How LLM text is cut into clauses for TTS: the first clause early, the rest natural."""

    first_min_chars: int = Field(
        12, ge=1, le=2000, description="The first clause may end at a comma once it is this long."
    )
    min_chars: int = Field(
        40, ge=1, le=2000, description="Later clauses end at a comma only past this length."
    )
    max_chars: int = Field(220, ge=20, le=2000, description="Force a cut at a space past this length.")
    first_clause_max_wait: float | None = Field(
        0.25,
        ge=0,
        le=10,
        description="Seconds after the LLM's first token to wait for punctuation before the first "
        "clause is cut at a word boundary anyway (null: always wait for punctuation).",
    )
    first_clause_min_words: int = Field(
        3, ge=1, le=100, description="The earliest word-boundary cut of the first clause."
    )

    @model_validator(mode="after")
    def _limits(self) -> Chunking:
        too_long = [
            f"{name} must not exceed max_chars"
            for name in ("first_min_chars", "min_chars")
            if getattr(self, name) > self.max_chars
        ]
        if too_long:
            raise ValueError(f"{' and '.join(too_long)} ({self.max_chars})")
        return self


class Context(Strict):
    max_turns: int = Field(
        20, ge=1, le=1000, description="Keep at most this many caller/agent exchanges in the LLM context."
    )


class Session(Strict):
    clock: Literal["auto", "real", "virtual"] = Field(
        "auto",
        description="auto: the transport decides (a file run uses virtual time, live calls real "
        "time).",
    )
    end_when_idle_after_input: float = Field(
        1.0,
        gt=0,
        le=600,
        description="File runs: once the caller's recording has ended and the agent is idle this "
        "long, the call ends.",
    )


class Keypad(Strict):
    """What keypad presses (DTMF, on phone lines) do."""

    enabled: bool = Field(True, description="Whether key presses reach the conversation at all.")
    end_keys: str = Field(
        "#", max_length=16, pattern=r"^[0-9*#A-D]*$", description="Keys that end an entry (e.g. an account number)."
    )
    digit_timeout: float = Field(
        3.0, gt=0, le=60, description="An entry without an end key is over this long after its last key."
    )
    max_digits: int = Field(32, ge=1, le=256, description="An entry this long is over.")
    interrupts: bool = Field(True, description="A key press stops the agent talking (if its line is interruptible).")
    says: str = Field(
        "(pressed on the keypad: {keys})",
        min_length=1,
        max_length=500,
        description="How an entry reaches the LLM, as the caller's words; {keys} is the entry, end key included.",
    )
    states: dict[str, str] = Field(
        default_factory=dict,
        description="A key pressed on its own that switches the conversation state, e.g. {'0': operator}.",
    )

    @field_validator("says")
    @classmethod
    def _template(cls, says: str) -> str:
        try:
            says.format(keys="123#")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"may use only {{keys}} ({type(exc).__name__}: {exc})") from None
        return says

    @field_validator("states")
    @classmethod
    def _keys(cls, states: dict[str, str]) -> dict[str, str]:
        for key in states:
            if key not in "0123456789*#ABCD" or len(key) != 1:
                raise ValueError(f"{key!r} is not a keypad key (0-9, *, #, A-D)")
        return states


class AgentCore(Strict):
    """The fields of an agent file that belong to voiceflow itself."""

    version: Literal[1] = Field(1, description="Agent file format version.")
    name: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="The agent's name, in logs and metrics (letters, digits, '.', '_', '-').",
    )
    description: str = Field("", description="Free text for people reading the file.")
    prompt: Prompt = Field(description="The system prompt and the greeting.")
    turn_taking: TurnTaking = Field(TurnTaking(), description="Endpointing and barge-in, with per-state overrides.")
    unhappy_paths: UnhappyPaths = Field(UnhappyPaths(), description="Silence, failures, unclear speech, call length.")
    chunking: Chunking = Field(Chunking(), description="How streamed LLM text is cut into clauses for TTS.")
    context: Context = Field(Context(), description="What the LLM is shown of the conversation.")
    serving: Serving = Field(Serving(), description="Limits and drain when served (`voiceflow serve`).")
    session: Session = Field(Session(), description="Clock and end-of-call behaviour.")
    keypad: Keypad = Field(Keypad(), description="Keypad presses (DTMF) on phone lines.")
    latency_budget: LatencyBudget = Field(
        LatencyBudget(), description="How long each stage of a turn may take; misses are logged and fail `voiceflow test`."
    )
    tools: list[ToolConfig] = Field(
        default_factory=list,
        max_length=64,
        description="Functions the LLM may call: HTTP webhooks, or Python functions from plugins.",
    )

    @model_validator(mode="after")
    def _tools_fit(self) -> AgentCore:
        names = [tool.tool_name for tool in self.tools]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"tools: each tool needs its own name ({', '.join(twice)} used twice)")
        known = set(self.turn_taking.states)
        for key, state in self.keypad.states.items():
            if state != RESET_STATE and state not in known:
                raise ValueError(f"keypad.states[{key!r}]: {state!r} is not a state of turn_taking.states")
        for index, tool in enumerate(self.tools):
            if tool.sets_state is not None and tool.sets_state != RESET_STATE and tool.sets_state not in known:
                listed = ", ".join(sorted(known)) or "none are declared"
                raise ValueError(
                    f"tools[{index}].sets_state: {tool.sets_state!r} is not a state of "
                    f"turn_taking.states ({listed}; or '{RESET_STATE}')"
                )
        return self
