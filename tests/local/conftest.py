"""The JACK sound card and its caller, for the local transport's tests (see local_sound_card)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from local_sound_card import Caller, jack_server, restart_portaudio


@pytest.fixture(scope="module")
def sound_card() -> Iterator[str]:
    """A JACK server on the dummy driver for the module's tests; PortAudio forgets it after."""
    with jack_server() as name:
        try:
            yield name
        finally:
            restart_portaudio(start=False)  # let go of the server before it stops
    restart_portaudio()


@pytest.fixture
def make_caller(sound_card: str) -> Iterator[Callable[..., Caller]]:
    """Makes a microphone and a speaker (``Caller``'s latencies as keywords), which PortAudio
    then lists (it is restarted to see them)."""
    made: list[Caller] = []

    def make(**latencies: float) -> Caller:
        person = Caller(sound_card, **latencies)
        made.append(person)
        restart_portaudio()
        return person

    try:
        yield make
    finally:
        for person in made:
            person.close()


@pytest.fixture
def caller(make_caller: Callable[..., Caller]) -> Caller:
    """A caller with the default latencies (150 ms capture, 250 ms playback)."""
    return make_caller()
