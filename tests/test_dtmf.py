"""In-band keypad tones: made by voiceflow.dtmf, heard by an independent Goertzel receiver.

The receiver (voiceflow.testing.dtmf_detector) applies telephone receivers' rules, so a key it
hears is a key an IVR would hear; speech, music and noise must give none.
"""

from __future__ import annotations

import numpy as np
import pytest

from audio_fixtures import espeak_pcm, goforward, noise, pad
from voiceflow.dtmf import (
    GAP_SECONDS,
    KEYS,
    TONE_SECONDS,
    BadKeys,
    check_keys,
    frequencies,
    seconds,
    tones,
    tones_mulaw,
)
from voiceflow.frames import TTSAudio
from voiceflow.g711 import MULAW_RATE, mulaw_decode
from voiceflow.runtime.framer import Framer
from voiceflow.scenarios.sounds import music
from voiceflow.testing.dtmf_detector import detect_keys, detected


@pytest.mark.parametrize("key", list(KEYS))
def test_every_key_is_heard_as_itself_at_16k_and_through_mulaw(key: str) -> None:
    assert detected(tones(key, 16_000), 16_000) == key
    decoded = np.frombuffer(mulaw_decode(tones_mulaw(key)), dtype="<i2")
    assert detected(decoded, MULAW_RATE) == key


def test_a_sequence_is_heard_key_by_key_with_its_timing() -> None:
    keys = "0123456789*#ABCD"
    found = detect_keys(tones(keys, 16_000), 16_000)
    assert "".join(k.key for k in found) == keys
    for index, key in enumerate(found):
        start = index * (TONE_SECONDS + GAP_SECONDS)
        assert abs(key.start - start) < 0.03 and abs(key.end - (start + TONE_SECONDS)) < 0.03


def test_a_key_pressed_twice_is_two_presses() -> None:
    assert detected(tones("1##1", 8_000), 8_000) == "1##1"


def test_the_mulaw_wire_frames_and_their_16k_copy_both_carry_the_keys() -> None:
    """As a phone call plays them: μ-law made once at 8 kHz, framed like a voice speaking μ-law
    (wire frames untouched, 16 kHz beside them for the recording)."""
    framer = Framer()
    framed = framer.push(TTSAudio(tones_mulaw("159#"), MULAW_RATE, encoding="mulaw")) + framer.finish()
    wire = b"".join(w for _, w in framed if w is not None)
    assert wire.startswith(tones_mulaw("159#"))
    assert detected(mulaw_decode(wire), MULAW_RATE) == "159#"
    assert detected(b"".join(pcm for pcm, _ in framed), 16_000) == "159#"


def test_the_tones_are_what_receivers_accept() -> None:
    samples = tones("5", 16_000).astype(np.float64) / 32768
    tone = samples[: round(TONE_SECONDS * 16_000)]
    spectrum = np.abs(np.fft.rfft(tone, n=16_000))
    low, high = frequencies("5")
    assert (low, high) == (770.0, 1336.0)
    assert abs(np.argmax(spectrum[:1000]) - low) <= 1 and abs(1000 + np.argmax(spectrum[1000:]) - high) <= 1
    twist = 20 * np.log10(spectrum[round(high)] / spectrum[round(low)])
    assert 1.5 < twist < 2.5  # high group 2 dB up
    assert np.max(np.abs(samples)) < 10 ** (-2.5 / 20)  # no clipping, with headroom
    assert seconds("123") == pytest.approx(0.6)


@pytest.mark.parametrize(
    "name",
    ["espeak menu", "espeak digits", "recorded speech", "hold music", "line noise"],
)
def test_speech_music_and_noise_are_no_keys(name: str) -> None:
    audio = {
        "espeak menu": lambda: espeak_pcm("For sales, press one. For support, press two. Para español, oprima nueve."),
        "espeak digits": lambda: espeak_pcm("one two three four five six seven eight nine zero star pound", "en-gb"),
        "recorded speech": goforward,
        "hold music": lambda: music(12.0).samples.tobytes(),
        "line noise": lambda: noise(5.0, dbfs=-30.0),
    }[name]()
    assert detect_keys(audio, 16_000) == []
    assert detect_keys(pad(tones("7", 16_000).tobytes(), before=0.3) + audio, 16_000)[0].key == "7"


def test_too_short_or_lone_tones_are_no_keys() -> None:
    t = np.arange(16_000) / 16_000
    lone = (0.3 * np.sin(2 * np.pi * 697 * t) * 32767).astype("<i2")
    assert detected(lone, 16_000) == ""
    blip = tones("3", 16_000)[: round(0.02 * 16_000)]
    assert detected(np.concatenate([np.zeros(1600, "<i2"), blip, np.zeros(1600, "<i2")]), 16_000) == ""


def test_keys_are_checked() -> None:
    assert check_keys("12ab#") == "12AB#"
    with pytest.raises(BadKeys, match=r"0-9, \*, #, A-D"):
        check_keys("1x")
    with pytest.raises(BadKeys):
        check_keys("")
