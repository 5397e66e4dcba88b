"""Built-in plugins use only the public API, so a third-party plugin can do whatever they do."""

from __future__ import annotations

import ast
from pathlib import Path

PUBLIC = {
    "voiceflow.providers", "voiceflow.frames", "voiceflow.config.base", "voiceflow.compute",
    "voiceflow.models", "voiceflow.audio", "voiceflow.clock", "voiceflow.plugins.hookspecs",
    "voiceflow.plugins", "voiceflow.serving.api", "voiceflow.g711", "voiceflow.tools",
    "voiceflow.low_delay_resampler", "voiceflow.frame_queue", "voiceflow.tasks",
}
PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def test_builtin_plugins_import_only_the_public_api() -> None:
    offenders = []
    for source in PLUGINS.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name.split(".")[0] == "voiceflow" and name not in PUBLIC:
                    offenders.append(f"{source.relative_to(PLUGINS)}: {name}")
    assert not offenders, offenders
    assert any(PLUGINS.rglob("*.py"))
