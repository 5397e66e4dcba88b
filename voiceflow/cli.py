"""The ``voiceflow`` command line: run, validate, schema, plugins."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from pydantic import ValidationError

from voiceflow.audio import AudioFileError, check_recording, display_path
from voiceflow.config.base import same_file
from voiceflow.config.compose import AgentConfig
from voiceflow.config.errors import ConfigError, one_line
from voiceflow.config.loader import internal_error, load_agent
from voiceflow.logging import LogFormat, configure_logging
from voiceflow.plugins.registry import PluginError, PluginRegistry
from voiceflow.providers import ProviderError, ProviderKind
from voiceflow.redaction import Redactor, redact, using_redactor
from voiceflow.runtime.pool import NoProviderReady
from voiceflow.runtime.session import CallResult
from voiceflow.tasks import create_task_group

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
    except Exception as exc:  # noqa: BLE001 - a bug of ours still ends in one line, not a traceback
        raise _fail(str(internal_error(str(path), exc))) from None


@app.command()
def run(
    agent_file: Annotated[Path, typer.Argument(help="The agent YAML file.")],
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="Caller recording (WAV): use the file transport.")
    ] = None,
    output_arg: Annotated[
        str | None, typer.Option("--output", "-o", help="Write the call as a stereo WAV.")
    ] = None,
    timeline_arg: Annotated[
        str | None, typer.Option("--timeline", help="Per-turn timeline JSON (default: next to --output).")
    ] = None,
    report_arg: Annotated[
        str | None, typer.Option("--report", help="Latency report of the call: HTML, and a PNG beside it.")
    ] = None,
    realtime: Annotated[bool, typer.Option(help="File runs: play in real time, not virtual time.")] = False,
    transport: Annotated[
        str | None, typer.Option(help="Run on this transport (its defaults), not the file's: e.g. local.")
    ] = None,
    log_format: Annotated[str, typer.Option(help="console or json.")] = "console",
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
) -> None:
    """Run an agent: on a recording with --input, else on the transport its YAML names."""
    fmt, level = _log_options(log_format, log_level)
    if transport not in (None, "file") and (input is not None or output_arg is not None or realtime):
        raise _fail(f"--transport {transport}: --input, --output and --realtime are for the file transport")
    output, timeline = _file_option("--output", output_arg), _file_option("--timeline", timeline_arg)
    report_path = _file_option("--report", report_arg)
    if input is not None:
        try:
            check_recording(input)
        except AudioFileError as exc:
            raise _fail(f"--input: {exc}") from None
    configure_logging(fmt, level)
    registry = PluginRegistry()
    agent = _load(agent_file, registry)
    if transport is not None:
        agent = _on_transport(agent, registry, transport)
    if input is not None or output is not None or realtime:
        agent = _with_file_transport(agent, registry, input, output, realtime)
    else:
        _not_served(agent, registry, agent_file)
    out_path = getattr(agent.transport, "output", None)
    timeline_path = timeline or (Path(out_path).with_suffix(".timeline.json") if out_path else None)
    _check_destinations(
        getattr(agent.transport, "input", None),
        [("--output" if output else "transport.output", out_path), ("--timeline" if timeline else "timeline", timeline_path),
         *_report_destinations(report_path)],
    )

    outcomes: list[CallResult] = []

    def done(result: CallResult) -> None:
        outcomes.append(result)
        if timeline_path is not None:
            try:
                result.timeline.write(timeline_path)
            except OSError as exc:
                typer.echo(f"--timeline: cannot write {timeline_path}: {exc.strerror}", err=True)
        _print_summary(result, out_path, timeline_path)
        if report_path is not None:
            from voiceflow.report.command import report_call

            report_call(result.timeline.as_dict(), report_path, _echo)

    with using_redactor(Redactor.for_config(agent)):
        try:
            stopped_by = anyio.run(_serve_until_signalled, agent, registry, done)
        except Exception as exc:  # noqa: BLE001 - task groups wrap what ends the run
            root = _single(exc)
            if isinstance(root, PluginError | NoProviderReady | ProviderError):
                raise _fail(f"{agent_file}: {redact(str(root))}", 1) from None
            raise
    if stopped_by is not None:
        raise typer.Exit(128 + stopped_by)
    if any(r.ended_because.startswith(("unavailable", "failed")) for r in outcomes):
        raise typer.Exit(1)


async def _serve_until_signalled(
    agent: AgentConfig, registry: PluginRegistry, done: Callable[[CallResult], None]
) -> int | None:
    """Serve the agent; the first Ctrl-C or SIGTERM hangs up (the recording and the timeline of
    what happened so far are written), a second one stops at once. Returns the signal, if any."""
    from voiceflow.runtime.runner import StopRequest, serve_agent
    from voiceflow.serving.command import on_signals

    stop = StopRequest(grace=STOP_GRACE)
    received: int | None = None
    async with create_task_group() as tg:

        def hang_up(signum: signal.Signals) -> None:
            nonlocal received
            received = int(signum)
            typer.echo(f"\n{signum.name}: hanging up (again to stop at once)", err=True)
            stop.set(f"stopped by {signum.name}")

        tg.start_soon(on_signals, hang_up, lambda _: tg.cancel_scope.cancel())
        await serve_agent(agent, registry, on_call_done=done, stop=stop)
        tg.cancel_scope.cancel()
    return received


STOP_GRACE = 0.5
"""Seconds a call gets to hang up after Ctrl-C before it is cut off (the exit comes within ~1 s)."""


@app.command()
def serve(
    agent_files: Annotated[list[Path], typer.Argument(help="Agent YAML files; each is served at /agents/<name>.")],
    host: Annotated[str, typer.Option(help="Address to listen on (anything but loopback needs a token).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8000,
    access_token: Annotated[
        str | None,
        typer.Option(envvar="VOICEFLOW_ACCESS_TOKEN", show_envvar=True,
                     help="Callers must present it (Bearer header or ?access_token=); prefer the variable."),
    ] = None,
    transport: Annotated[
        str | None, typer.Option(help="Serve every agent on this transport (its defaults), not the file's.")
    ] = None,
    plugin: Annotated[
        list[str] | None, typer.Option(help="Also load this plugin module (not installed: development, tests).")
    ] = None,
    log_format: Annotated[str, typer.Option(help="console or json.")] = "console",
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
    traces: Annotated[
        str | None,
        typer.Option(envvar="VOICEFLOW_TRACES", show_envvar=True,
                     help="OpenTelemetry spans per call and turn: otlp (OTEL_EXPORTER_OTLP_* settings) or console."),
    ] = None,
    settle_gc: Annotated[
        bool, typer.Option(help="Once the agents are loaded, freeze what the process holds and collect garbage "
                                "less often (see docs/deployment.md, Memory).")
    ] = True,
    collect_every: Annotated[
        float, typer.Option(min=0.0, help="Seconds between full passes of Python's cyclic garbage collector "
                                 "(0: when CPython's thresholds say; see docs/deployment.md, Memory).")
    ] = 120.0,
    trim_heap_every: Annotated[
        float, typer.Option(help="Seconds between giving the malloc heap's free memory back to the system (0: never).")
    ] = 30.0,
    gil_switch_interval: Annotated[
        float, typer.Option(min=0.0, help="Seconds a thread may keep the GIL once another asks for it, while serving "
                                 "(0: Python's 5 ms; see docs/deployment.md).")
    ] = 0.0005,
) -> None:
    """Serve agents to live callers (WebSocket, browser, phone) until SIGTERM drains the calls."""
    from voiceflow.serving.command import run_until_drained
    from voiceflow.serving.server import ServeOptions, ServingError, check_bind_or_fail

    fmt, level = _log_options(log_format, log_level)
    options = ServeOptions(host, port, access_token, traces, settle_gc=settle_gc,
                           collect_every=collect_every or None, trim_heap_every=trim_heap_every or None, gil_switch_interval=gil_switch_interval or None)
    try:
        check_bind_or_fail(options)
    except ServingError as exc:
        raise _fail(f"voiceflow serve: {exc}") from None
    configure_logging(fmt, level)
    registry = _registry_with(plugin or [])
    agents = [_load(path, registry) for path in agent_files]
    if transport is not None:
        agents = [_on_transport(agent, registry, transport) for agent in agents]
    try:
        code = run_until_drained(agents, registry, options)
    except Exception as exc:  # noqa: BLE001 - task groups wrap what ends the server
        root = _single(exc)
        if isinstance(root, ServingError):
            raise _fail(f"voiceflow serve: {root}") from None
        if isinstance(root, PluginError | NoProviderReady | ProviderError):
            raise _fail(f"voiceflow serve: {redact(str(root))}", 1) from None
        raise
    if code:
        raise typer.Exit(code)


def _single(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _registry_with(modules: list[str]) -> PluginRegistry:
    import importlib

    loaded = []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except Exception as exc:  # noqa: BLE001 - one line, not a traceback
            raise _fail(f"--plugin {name}: cannot import it ({type(exc).__name__}: {exc})") from None
    return PluginRegistry(plugins=loaded)


def _on_transport(agent: AgentConfig, registry: PluginRegistry, name: str) -> AgentConfig:
    try:
        config = registry.get(ProviderKind.TRANSPORT, name).cls.config_model.model_validate({"provider": name})
    except (PluginError, ValidationError) as exc:
        raise _fail(f"--transport: {one_line(str(exc))}") from None
    return agent.model_copy(update={"transport": config})


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
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ("output" if output is not None else "input")
        given = {"input": input, "output": output}.get(field)
        label = f"--{field}" if given is not None else f"transport.{field}"
        raise _fail(f"{label}: {error['msg'].removeprefix('Value error, ')}") from None
    return agent.model_copy(update={"transport": config})


def _not_served(agent: AgentConfig, registry: PluginRegistry, agent_file: Path) -> None:
    """A transport that takes calls over the network is run by `voiceflow serve`: say so before
    any model loads, instead of after."""
    from voiceflow.serving.api import ServedTransport

    provider = agent.transport.provider
    if issubclass(registry.get(ProviderKind.TRANSPORT, provider).cls, ServedTransport):
        raise _fail(f"{agent_file}: transport {provider!r} takes calls over the network: "
                    f"run `voiceflow serve {agent_file}` (or `voiceflow run {agent_file} --input caller.wav`)")


def _file_option(option: str, value: str | None) -> Path | None:
    """A path option that must name a file: ``out/`` names a folder, which a Path would hide."""
    if value is None:
        return None
    if value.endswith(("/", os.sep)) or value in ("", ".", ".."):
        raise _fail(f"{option}: {value!r} names a folder; give a file name, e.g. {value.rstrip('/') or '.'}/call.wav")
    return Path(value)


LOG_LEVELS = ("debug", "info", "warning", "error")


def _log_options(log_format: str, log_level: str) -> tuple[LogFormat, str]:
    fmt, level = log_format.lower(), log_level.lower()
    if fmt not in ("console", "json"):
        raise _fail(f"--log-format must be 'console' or 'json' (got {log_format!r})")
    if level not in LOG_LEVELS:
        raise _fail(f"--log-level must be one of {', '.join(LOG_LEVELS)} (got {log_level!r})")
    return ("json" if fmt == "json" else "console"), level


def _check_destinations(recording: Path | None, destinations: list[tuple[str, Path | None]]) -> None:
    """Refuse, before any model loads, a path the call's results could not be written to: they
    are written only once the call is over, and a failure then would lose the whole call."""
    checked: list[tuple[str, Path]] = []
    for label, path in destinations:
        if path is None:
            continue
        problem = _unwritable(path)
        if problem is None and recording is not None and same_file(path, recording):
            problem = "is the input recording; writing there would overwrite it"
        for other_label, other in checked:
            if problem is None and same_file(path, other):
                problem = f"is the same file as {other_label}"
        if problem is not None:
            raise _fail(f"{label}: {display_path(path)} {problem}")
        checked.append((label, path))


def _unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be written, or None; probed by really opening it (a read-only mount or
    an ACL fools permission bits), without changing an existing file."""
    try:
        mode: int | None = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as exc:
        return f"cannot be checked ({exc.strerror})"
    if mode is not None and stat.S_ISDIR(mode):
        return "is a directory; give a file name"
    if mode is not None and not stat.S_ISREG(mode):
        return "exists and is not a regular file"
    parent = path.parent
    if not os.path.isdir(parent):
        exists = os.path.lexists(parent)
        problem = f"{display_path(parent)} is not a folder" if exists else f"folder {display_path(parent)} does not exist"
        return f"cannot be written: {problem}"
    try:
        if mode is not None:
            open(path, "ab").close()
        else:
            open(path, "xb").close()
            os.unlink(path)
    except OSError as exc:
        return f"cannot be written ({exc.strerror})"
    return None


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
            typer.echo(f"{one_line(str(path))}: ok")
        except ConfigError as exc:
            failed += 1
            typer.echo(str(exc), err=True)
        except Exception as exc:  # noqa: BLE001 - a bug of ours: one line for this file, then the next
            failed += 1
            typer.echo(str(internal_error(str(path), exc)), err=True)
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
    """List installed providers and tools: kind, name, package, version."""
    registry = PluginRegistry()
    rows = [("KIND", "NAME", "PACKAGE", "VERSION", "DESCRIPTION")]
    rows += [(i.kind.value, i.name, i.package, i.version, i.cls.summary()) for i in registry.providers()]
    rows += [("tool", t.tool.name, t.package, t.version, t.tool.description.splitlines()[0] if t.tool.description else "")
             for t in registry.tools()]
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

    async def go() -> list[str]:
        pool = ProviderPool(registry)
        try:
            return await prepare_agent(agent, pool)
        finally:
            await pool.aclose()

    with using_redactor(Redactor.for_config(agent)):
        problems = anyio.run(go)
    for problem in problems:
        typer.echo(f"{agent_file}: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{agent_file}: all models ready")


@app.command("test")
def test_agent(
    agent_file: Annotated[Path, typer.Argument(help="The agent YAML file.")],
    scenario_file: Annotated[Path, typer.Argument(help="The scenario YAML file (docs/testing-agents.md).")],
    only: Annotated[
        list[str] | None, typer.Option("--only", "-k", help="Run only scenarios whose name contains this.")
    ] = None,
    junit: Annotated[Path | None, typer.Option(help="Also write the verdicts as JUnit XML (for CI).")] = None,
    recordings: Annotated[
        Path | None, typer.Option(help="Write each call here as a stereo WAV and its timeline JSON.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every call's timeline.")] = False,
    plugin: Annotated[
        list[str] | None, typer.Option(help="Also load this plugin module (tools, providers for the test).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "warning",
) -> None:
    """Run scenario tests of an agent: a simulated caller on real audio, checked turn by turn."""
    from voiceflow.scenarios.command import run_tests

    fmt, level = _log_options("console", log_level)
    configure_logging(fmt, level)
    extra = list(_registry_with(plugin or []).plugins)
    raise typer.Exit(run_tests(agent_file, scenario_file, extra, only=only or [], junit=junit,
                               recordings=recordings, verbose=verbose))


def _echo(line: str, err: bool) -> None:
    typer.echo(line, err=err)


def _report_destinations(report_path: Path | None) -> list[tuple[str, Path | None]]:
    """``--report`` writes a page and a picture beside it: both are checked before the call."""
    if report_path is None:
        return []
    from voiceflow.report.command import picture_path

    return [("--report", report_path), ("--report (its PNG)", picture_path(report_path))]


@app.command()
def report(
    timelines: Annotated[
        list[Path], typer.Argument(help="Timeline JSON files (voiceflow run --timeline), or folders of them.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML page to write.")] = Path("report.html"),
    png: Annotated[Path | None, typer.Option(help="Where to write the PNG (default: beside the page).")] = None,
    no_png: Annotated[bool, typer.Option("--no-png", help="Write the page only.")] = False,
    agent: Annotated[
        Path | None, typer.Option(help="Check this agent file's latency_budget instead of the misses recorded.")
    ] = None,
) -> None:
    """Latency report of calls: a waterfall per turn (HTML and PNG), p50/p95 per stage."""
    from voiceflow.report.command import picture_path, report_files

    if png is not None and no_png:
        raise _fail("--png and --no-png: choose one")
    budget = _load(agent, PluginRegistry()).latency_budget if agent is not None else None
    picture = None if no_png else png or picture_path(output)
    raise typer.Exit(report_files(timelines, output, picture, _echo, budget=budget, png_required=png is not None))


def main() -> None:
    try:
        PluginRegistry().add_commands(app)
    except PluginError as exc:
        typer.echo(f"plugin error: {exc}", err=True)
        sys.exit(2)
    try:
        app()
    except KeyboardInterrupt:  # outside a call (loading plugins, reading files): just stop
        sys.exit(130)
