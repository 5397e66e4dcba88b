"""One call's Whisper stream: buffer the utterance, decode it in a worker thread at the endpoint.

Whisper is a batch recogniser, so ``send`` only appends frames to a bounded buffer (cheap, on the
event loop) and all the work happens in ``finalize``. ``speech_started`` marks where the utterance
begins; a little audio before that (``pre_roll``) is kept because VAD onsets are a few tens of
milliseconds late on soft consonants, and clipping them costs words.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.lowlevel

from voiceflow.clock import current_clock
from voiceflow.compute import run_in_thread
from voiceflow.frames import FRAME_SECONDS, AudioFrame, Transcript
from voiceflow.providers import STTStream

DecodeFn = Callable[[bytes], tuple[str, float | None]]
"""Blocking decode of one utterance of PCM16 audio: text and confidence."""


class WhisperStream(STTStream):
    """Buffers caller audio and emits one final :class:`Transcript` per ``finalize``.

    The buffer holds at most ``pre_roll + max_utterance`` seconds; older audio falls off the front,
    so a caller who never pauses cannot grow memory without bound. Audio already decoded by an
    earlier ``finalize`` is never decoded twice, even when the next pre-roll reaches back into it.
    """

    def __init__(
        self,
        decode: DecodeFn,
        limiter: anyio.CapacityLimiter,
        *,
        pre_roll: float,
        max_utterance: float,
    ) -> None:
        self._decode = decode
        self._limiter = limiter
        self._pre_roll = pre_roll
        self._frames: deque[AudioFrame] = deque(maxlen=math.ceil((pre_roll + max_utterance) / FRAME_SECONDS))
        self._speech_t: float | None = None
        self._consumed_t = -math.inf
        self._send, self._receive = anyio.create_memory_object_stream[Transcript](math.inf)

    async def send(self, frame: AudioFrame) -> None:
        self._frames.append(frame)

    def speech_started(self, t: float) -> None:
        # Keep the earliest onset since the last finalize: a pause inside one turn (start, end,
        # start again) must not drop the first words.
        if self._speech_t is None or t < self._speech_t:
            self._speech_t = t

    async def finalize(self) -> None:
        """Decode everything since the utterance began (minus pre-roll) and emit one final.

        The utterance is taken out of the buffer *before* awaiting, so if this call is cancelled
        (the turn was abandoned) the stream stays consistent: later audio and later finalizes
        work as usual, and the abandoned audio is never transcribed. Waiting for the decode
        slot is cancelled at once; a decode already running finishes first (a few hundred ms;
        CTranslate2 cannot be interrupted) and its result is dropped.
        """
        frames = self._take_utterance()
        text, confidence = "", None
        end = frames[-1].t + frames[-1].duration if frames else None
        if frames:
            pcm = b"".join(frame.pcm for frame in frames)
            text, confidence = await run_in_thread(self._decode, pcm, limiter=self._limiter)
            # A running decode cannot be interrupted, so a cancel that arrived meanwhile is
            # honoured here: the result belongs to an abandoned turn and must not be emitted.
            await anyio.lowlevel.checkpoint_if_cancelled()
        transcript = Transcript(
            text=text, is_final=True, t=current_clock().now(), confidence=confidence, finalized=True, end=end
        )
        try:
            self._send.send_nowait(transcript)
        except anyio.ClosedResourceError:
            pass  # the stream was closed while decoding: nobody is listening any more

    def _take_utterance(self) -> list[AudioFrame]:
        start = self._consumed_t
        if self._speech_t is not None:
            start = max(start, self._speech_t - self._pre_roll)
        frames = [frame for frame in self._frames if frame.t + frame.duration > start]
        self._speech_t = None
        if frames:
            self._consumed_t = frames[-1].t + frames[-1].duration
        return frames

    async def transcripts(self) -> AsyncIterator[Transcript]:
        try:
            receive = self._receive.clone()
        except anyio.ClosedResourceError:
            return  # already closed: an empty iterator, like a stream that ended
        with receive:
            async for transcript in receive:
                yield transcript

    async def aclose(self) -> None:
        self._send.close()
        self._receive.close()
        self._frames.clear()
