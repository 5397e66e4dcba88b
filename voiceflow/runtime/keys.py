"""Pressing keys in band: the keypad tones played as one agent turn, through the normal playout.

The tones go through :meth:`~voiceflow.providers.CallTransport.play` like a voice's audio, with
playback marks, so the transport paces them, a recording holds them, and the turn ends when the
listener has heard the last gap (an IVR reads a key once its tone has ended). On a μ-law line the
tones are made at 8 kHz and encoded once, and travel as wire frames untouched.
"""

from __future__ import annotations

from voiceflow.dtmf import tones, tones_mulaw
from voiceflow.frames import SAMPLE_RATE, AudioFrame, TTSAudio
from voiceflow.g711 import MULAW_RATE
from voiceflow.providers import CallTransport, OutFrame
from voiceflow.runtime.framer import Framer
from voiceflow.runtime.reply import Clause, PlaybackMark, Reply

MULAW_WIRE = "mulaw/8000"


def key_frames(keys: str, wire_format: str | None) -> list[tuple[bytes, bytes | None]]:
    """The 20 ms frames of ``keys``: PCM16 16 kHz, and the wire frame when the line is μ-law."""
    framer = Framer()
    if wire_format == MULAW_WIRE:
        chunk = TTSAudio(tones_mulaw(keys), MULAW_RATE, encoding="mulaw")
    else:
        chunk = TTSAudio(tones(keys, SAMPLE_RATE).tobytes(), SAMPLE_RATE)
    return framer.push(chunk) + framer.finish()


async def play_keys(reply: Reply, keys: str, transport: CallTransport) -> None:
    """Play ``keys`` as the whole of ``reply``; returns once the listener has heard them."""
    frames = key_frames(keys, transport.wire_format)
    clause = Clause(f"[keys {keys}]", queued=sum(len(pcm) // 2 for pcm, _ in frames), complete=True)
    reply.clauses.append(clause)
    reply.generated = clause.text
    reply.all_queued = True  # before the first mark can come back: the last one finishes it
    through = 0
    for pcm, wire in frames:
        through += len(pcm) // 2
        await transport.play(OutFrame(AudioFrame(pcm), PlaybackMark(reply, 0, through), wire))
    await reply.finished.wait()
