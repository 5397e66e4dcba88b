"""The ``voiceflow`` command line: run, validate, schema, plugins."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer

from voiceflow.config.compose import AgentConfig
from voiceflow.config.errors import ConfigError
from voiceflow.config.loader import load_agent
from voiceflow.logging import LogFormat, configure_logging
from voiceflow.plugins.registry import PluginError, PluginRegistry
from voiceflow.providers import ProviderKind
from voiceflow.runtime.session import CallResult

app = typer.Typer(
    help="voiceflow: real-time voice agents, each one YAML file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

DEFAULT_SCHEMA = Path("schemas/agent.schema.json")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _load(path: Path, registry: PluginRegistry) -> AgentConfig:
    try:
        return load_agent(path, registry)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


@app.command()
def run(
    agent_file: Annotated[Path, typer.Argument(help="The agent YAML file.")],
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="Caller recording (WAV): use the file transport.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the call as a stereo WAV.")] = None,
    timeline: Annotated[
        Path | None, typer.Option(help="Per-turn timeline JSON (default: next to --output).")
    ] = None,
    realtime: Annotated[bool, typer.Option(help="File runs: play in real time, not virtual time.")] = False,
    log_format: Annotated[str, typer.Option(help="console or json.")] = "console",
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
) -> None:
    """Run an agent: on a recording with --input, else on the transport its YAML names."""
    if log_format not in ("console", "json"):
        raise _fail("--log-format must be 'console' or 'json'")
    fmt: LogFormat = "json" if log_format == "json" else "console"
    configure_logging(fmt, log_level)
    registry = PluginRegistry()
    agent = _load(agent_file, registry)
    if input is not None or output is not None or realtime:
        agent = _with_file_transport(agent, registry, input, output, realtime)
    out_path = getattr(agent.transport, "output", None)
    timeline_path = timeline or (Path(out_path).with_suffix(".timeline.json") if out_path else None)

    from voiceflow.runtime.runner import serve_agent

    def done(result: CallResult) -> None:
        if timeline_path is not None:
            result.timeline.write(timeline_path)
        _print_summary(result, out_path, timeline_path)

    from voiceflow.runtime.pool import NoProviderReady

    try:
        anyio.run(lambda: serve_agent(agent, registry, on_call_done=done))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except (NoProviderReady, PluginError) as exc:
        raise _fail(f"{agent_file}: {exc}", 1) from None


def _with_file_transport(
    agent: AgentConfig, registry: PluginRegistry, input: Path | None, output: Path | None, realtime: bool
) -> AgentConfig:
    try:
        file_transport = registry.get(ProviderKind.TRANSPORT, "file").cls
    except PluginError as exc:
        raise _fail(str(exc)) from None
    current: dict[str, Any] = agent.transport.model_dump() if agent.transport.provider == "file" else {"provider": "file"}
    if input is not None:
        current["input"] = input
    if output is not None:
        current["output"] = output
    current["realtime"] = realtime or current.get("realtime", False)
    try:
        config = file_transport.config_model.model_validate(current, context={"base_dir": Path.cwd()})
    except Exception as exc:  # noqa: BLE001 - pydantic's message names the field
        raise _fail(f"--input/--output: {exc}") from None
    return agent.model_copy(update={"transport": config})


def _print_summary(result: CallResult, wav: Any, timeline: Path | None) -> None:
    typer.echo(f"\ncall {result.call_id}: {len(result.timeline.turns)} agent turns, ended: {result.ended_because}")
    for turn in result.timeline.turns:
        spans = turn.as_dict()["spans"]
        m2e = spans.get("mouth_to_ear")
        head = f"  [{turn.index}] {turn.kind:<9} {turn.outcome:<11}"
        if turn.user_text:
            typer.echo(f"{head} caller: {turn.user_text!r}")
            head = " " * len(head)
        typer.echo(f"{head} agent:  {turn.heard_text or turn.agent_text!r}")
        if m2e is not None:
            detail = ", ".join(
                f"{name} {spans[name] * 1000:.0f} ms"
                for name in ("endpointing", "stt_ttfb", "llm_ttfb", "tts_ttfb")
                if name in spans
            )
            typer.echo(f"{' ' * 27}mouth-to-ear {m2e * 1000:.0f} ms ({detail})")
    if wav:
        typer.echo(f"call audio: {wav} (caller left, agent right)")
    if timeline:
        typer.echo(f"timeline:   {timeline}")


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Agent files to check.")]) -> None:
    """Check agent files; print every problem with its file, line and field."""
    registry = PluginRegistry()
    failed = 0
    for path in files:
        try:
            load_agent(path, registry)
            typer.echo(f"{path}: ok")
        except ConfigError as exc:
            failed += 1
            typer.echo(str(exc), err=True)
    if failed:
        raise typer.Exit(1)


def agent_schema(registry: PluginRegistry) -> dict[str, Any]:
    schema = registry.agent_model.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://voiceflow.dev/schemas/agent.schema.json",
        **schema,
    }


def render_schema(registry: PluginRegistry) -> str:
    return json.dumps(agent_schema(registry), indent=2, sort_keys=False) + "\n"


@app.command()
def schema(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write it.")] = DEFAULT_SCHEMA,
    all_plugins: Annotated[
        bool, typer.Option(help="Include third-party plugins (the checked-in schema has built-ins only).")
    ] = False,
    check: Annotated[bool, typer.Option(help="Exit 1 if the file is not current; write nothing.")] = False,
) -> None:
    """Write the agent JSON schema (for editors and CI)."""
    text = render_schema(PluginRegistry(builtin_only=not all_plugins))
    _write_or_check(output, text, check, "voiceflow schema")


DEFAULT_REFERENCE = Path("docs/configuration.md")


@app.command()
def docs(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write it.")] = DEFAULT_REFERENCE,
    check: Annotated[bool, typer.Option(help="Exit 1 if the file is not current; write nothing.")] = False,
) -> None:
    """Write the configuration reference (Markdown) generated from the schema."""
    from voiceflow.config.reference import render_reference

    text = render_reference(agent_schema(PluginRegistry(builtin_only=True)))
    _write_or_check(output, text, check, "voiceflow docs")


def _write_or_check(output: Path, text: str, check: bool, command: str) -> None:
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            raise _fail(f"{output} is stale: run `{command}`", 1)
        typer.echo(f"{output}: current")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}")


@app.command()
def plugins() -> None:
    """List installed providers: kind, name, package, version."""
    registry = PluginRegistry()
    rows = [("KIND", "NAME", "PACKAGE", "VERSION", "DESCRIPTION")]
    rows += [(i.kind.value, i.name, i.package, i.version, i.cls.summary()) for i in registry.providers()]
    widths = [max(len(row[c]) for row in rows) for c in range(4)]
    for row in rows:
        typer.echo("  ".join(cell.ljust(widths[c]) for c, cell in enumerate(row[:4])) + "  " + row[4])
    for broken in registry.broken:
        typer.echo(f"BROKEN  {broken.plugin} ({broken.package}): {broken.error}", err=True)


@app.command()
def prepare(agent_file: Annotated[Path, typer.Argument(help="The agent YAML file.")]) -> None:
    """Prepare (join, verify, load) every model an agent uses, so its first call starts warm."""
    configure_logging("console", "warning")
    registry = PluginRegistry()
    agent = _load(agent_file, registry)
    from voiceflow.runtime.pool import ProviderPool
    from voiceflow.runtime.runner import prepare as prepare_agent

    async def go() -> None:
        pool = ProviderPool(registry)
        await prepare_agent(agent, pool)
        await pool.aclose()

    anyio.run(go)
    typer.echo(f"{agent_file}: all models ready")


def main() -> None:
    try:
        PluginRegistry().add_commands(app)
    except PluginError as exc:
        typer.echo(f"plugin error: {exc}", err=True)
        sys.exit(2)
    app()
