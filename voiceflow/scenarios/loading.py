"""Reading a scenario file, and the agent each scenario runs, with the agent loader's errors.

A scenario file goes through the agent file's own machinery (:mod:`voiceflow.config`): the same
size and encoding checks, YAML with positions, ``${ENV}`` interpolation, and pydantic errors
turned into ``file:line:col: field.path: message`` lines. A scenario may change the agent
(``agent:`` is merged into the agent file); the merged file is validated as a whole, and each
problem is reported where it was written: in the agent file, or in the scenario file's override.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from voiceflow.config.compose import AgentConfig
from voiceflow.config.errors import ConfigError, ConfigIssue
from voiceflow.config.explain import issue_for
from voiceflow.config.limits import DEFAULT_LIMITS
from voiceflow.config.loader import internal_error
from voiceflow.config.reading import read_agent_text
from voiceflow.config.yaml_source import SourceMap, load_yaml
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.scenarios.model import Scenario, ScenarioFile


@dataclass(frozen=True)
class YamlFile:
    """A YAML file read with positions: its data, where each value came from, its folder."""

    path: Path
    data: Any
    source: SourceMap

    @property
    def base_dir(self) -> Path:
        return self.path.resolve().parent


def read_yaml(path: str | Path, env: Mapping[str, str] | None = None) -> YamlFile:
    """Read ``path`` as the agent loader reads an agent file; :class:`ConfigError` if it cannot."""
    filename = str(path)
    try:
        text = read_agent_text(path, DEFAULT_LIMITS)
        data, source = load_yaml(text, filename, env, DEFAULT_LIMITS)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line for the file, never a traceback
        raise internal_error(filename, exc) from exc
    if not isinstance(data, dict):
        what = "empty" if data is None else "not a mapping of fields"
        raise ConfigError([ConfigIssue(filename, 1, 1, (), f"the file is {what}")])
    return YamlFile(Path(path), data, source)


def load_scenarios(
    path: str | Path, registry: PluginRegistry, env: Mapping[str, str] | None = None
) -> tuple[ScenarioFile, YamlFile]:
    """The validated scenario file, and its YAML (for placing errors found later)."""
    file = read_yaml(path, env)
    try:
        model = ScenarioFile.model_validate(file.data, context={"base_dir": file.base_dir})
    except ValidationError as exc:
        issues = [issue_for(error, file.data, file.source, ScenarioFile, registry) for error in exc.errors()]
        raise ConfigError(issues[: DEFAULT_LIMITS.max_issues]) from None
    return model, file


def scenario_agent(
    agent: YamlFile, scenarios: YamlFile, index: int, registry: PluginRegistry
) -> AgentConfig:
    """The agent of scenario ``index``: the agent file, then the file's ``defaults.agent``, then the
    scenario's own ``agent:``, validated together."""
    overlays = [
        (("defaults", "agent"), _get(scenarios.data, ("defaults", "agent"))),
        (("scenarios", index, "agent"), _get(scenarios.data, ("scenarios", index, "agent"))),
    ]
    # The scenario's caller is the call's transport: the agent's own (a phone line with its
    # keys, a browser page) is never used here, so it is not asked to validate either.
    data = {**agent.data, "transport": {"provider": "file"}}
    for _, overlay in overlays:
        if isinstance(overlay, dict):
            data = merged(data, overlay)
    model = registry.agent_model
    try:
        validated = model.model_validate(data, context={"base_dir": agent.base_dir})
    except ValidationError as exc:
        issues = []
        for error in exc.errors()[: DEFAULT_LIMITS.max_issues]:
            issue = issue_for(error, data, agent.source, model, registry)
            issues.append(_placed(issue, overlays, scenarios.source))
        raise ConfigError(issues) from None
    return typing.cast(AgentConfig, validated)


def merged(base: Any, overlay: Any) -> Any:
    """``overlay`` over ``base``: mappings merge key by key; anything else (a list too) replaces."""
    if not isinstance(base, dict) or not isinstance(overlay, dict):
        return overlay
    result = dict(base)
    for key, value in overlay.items():
        result[key] = merged(base.get(key), value) if key in base else value
    return result


def _placed(
    issue: ConfigIssue, overlays: list[tuple[tuple[str | int, ...], Any]], scenarios: SourceMap
) -> ConfigIssue:
    """An issue of the merged agent, moved to the scenario file if an override wrote that value
    (the scenario's own override wins over the file's defaults, as in the merge)."""
    for prefix, overlay in reversed(overlays):
        if _written_by(overlay, issue.path):
            position = scenarios.position((*prefix, *issue.path))
            line, column = position if position else (None, None)
            path = (*prefix, *issue.path)
            return dataclasses.replace(issue, filename=scenarios.filename, line=line, column=column, path=path)
    return issue


def _written_by(overlay: Any, path: tuple[str | int, ...]) -> bool:
    """Whether the value at ``path`` (or a value containing it) comes from ``overlay``."""
    if not isinstance(overlay, dict) or not path or path[0] not in overlay:
        return False
    node = overlay[path[0]]
    return not isinstance(node, dict) or len(path) == 1 or _written_by(node, path[1:])


def _get(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


def with_defaults(model: ScenarioFile, scenario: Scenario) -> Scenario:
    """``scenario`` with the file's defaults filled in where it gave none (``agent`` is merged
    separately, by :func:`scenario_agent`)."""
    given = scenario.model_fields_set
    update = {
        name: getattr(model.defaults, name)
        for name in ("voice", "rate", "pitch", "line_noise")
        if name not in given and getattr(model.defaults, name) is not None
    }
    return scenario.model_copy(update=update) if update else scenario
