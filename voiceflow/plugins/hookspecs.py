"""The hooks a voiceflow plugin can implement.

Deliberately few, in the manner of pytest and simonw/llm: a plugin module implements one or more
``register_*`` functions, decorated with :data:`hookimpl`, and calls the ``register`` callback it
is given. Built-in providers register exactly the same way, through the same entry-point group.

A plugin package declares itself in its ``pyproject.toml``::

    [project.entry-points.voiceflow]
    my_tts = "my_package.plugin"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer

    from voiceflow.providers import Provider
    from voiceflow.tools import Tool

PROJECT = "voiceflow"
ENTRY_POINT_GROUP = "voiceflow"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[["type[Provider[Any]]"], None]
RegisterTool = Callable[["Tool"], None]


@hookspec
def register_providers(register: Register) -> None:
    """Register VAD, STT, LLM and TTS provider classes: ``register(MyProvider)`` for each."""


@hookspec
def register_transports(register: Register) -> None:
    """Register transport classes (file, web, phone, ...): ``register(MyTransport)`` for each."""


@hookspec
def register_tools(register: RegisterTool) -> None:
    """Register Python tools an agent file can offer its LLM: ``register(Tool(...))`` for each
    (see :mod:`voiceflow.tools`)."""


@hookspec
def register_commands(cli: typer.Typer) -> None:
    """Add sub-commands to the ``voiceflow`` command line."""
