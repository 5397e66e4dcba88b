"""A minimal ctypes binding of libespeak-ng (from the espeakng-loader package).

espeak-ng keeps all of its state in process globals (voice, parameters, the synth callback), so
it is initialised once per process and every synthesis holds :data:`LOCK` from setting the voice
to the last sample. Piper links its own static copy of espeak-ng into ``piper.espeakbridge``;
both are loaded ``RTLD_LOCAL``, so the two copies keep separate globals and do not interfere.

Synchronous mode (``AUDIO_OUTPUT_SYNCHRONOUS``) makes ``espeak_Synth`` call our callback with
each buffer of samples on the calling thread, before it returns; returning 1 from the callback
aborts the synthesis, which is how a barge-in stops it within one buffer.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LOCK = threading.Lock()
"""Held for every call into libespeak-ng: the library is process-global and not thread-safe."""

BUFFER_MS = 50
"""Audio per callback; small, so the first chunk is ready after synthesising ~50 ms of speech."""

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report data errors instead of calling exit()
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _PITCH = 1, 3
_EE_OK = 0

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

OnAudio = Callable[[bytes], bool]
"""Receives PCM16 bytes; returns True to abort the synthesis."""


class EspeakError(Exception):
    """libespeak-ng could not be loaded, initialised or driven."""


@dataclass
class _Engine:
    lib: ctypes.CDLL
    sample_rate: int
    callback: object  # the CFUNCTYPE object: kept referenced so it is never garbage collected
    sink: OnAudio | None = None


_engine: _Engine | None = None


def engine_sample_rate() -> int:
    """Initialise libespeak-ng once per process and return its output rate (22,050 Hz)."""
    return _initialise().sample_rate


def synthesize(text: str, voice: str, rate: int, pitch: int, on_audio: OnAudio) -> None:
    """Synthesise ``text`` on this thread, handing each buffer to ``on_audio`` as it is made."""
    engine = _initialise()
    with LOCK:
        lib = engine.lib
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise EspeakError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(_RATE, rate, 0)
        lib.espeak_SetParameter(_PITCH, pitch, 0)
        data = text.encode("utf-8") + b"\0"
        engine.sink = on_audio
        try:
            status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        finally:
            engine.sink = None
        if status != _EE_OK:
            raise EspeakError(f"espeak_Synth failed with status {status}")


def _initialise() -> _Engine:
    global _engine
    with LOCK:
        if _engine is not None:
            return _engine
        try:
            import espeakng_loader
        except ImportError as exc:
            raise EspeakError("espeakng-loader is not installed: pip install espeakng-loader") from exc
        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data_path = espeakng_loader.get_data_path()
        except (OSError, RuntimeError) as exc:
            raise EspeakError(f"cannot load libespeak-ng: {exc}") from exc
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]  # fmt: skip
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, BUFFER_MS, data_path.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed ({rate}) with data at {data_path}")
        engine = _Engine(lib=lib, sample_rate=rate, callback=None)

        def on_samples(wav: Any, count: int, _events: int | None) -> int:
            sink = engine.sink
            if sink is None:
                return 1
            if not wav or count <= 0:  # NULL buffer: the end-of-synthesis call
                return 0
            return 1 if sink(ctypes.string_at(wav, count * 2)) else 0

        engine.callback = _SynthCallback(on_samples)
        lib.espeak_SetSynthCallback(engine.callback)
        _engine = engine
        return engine
