"""Loading an agent file: bytes → YAML with positions → interpolation → pydantic → clear errors.

Whatever the file holds, the caller gets an :class:`AgentConfig` or a :class:`ConfigError`, one
line per problem: reading, decoding and parsing refuse what is too big, too deep or not text
(:mod:`~voiceflow.config.reading`, :mod:`~voiceflow.config.yaml_compose`); anything unexpected
below is still reported as an issue of that file, never as a traceback.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from pathlib import Path as FsPath
from typing import TYPE_CHECKING

from pydantic import ValidationError

from voiceflow.config.compose import AgentConfig
from voiceflow.config.errors import ConfigError, ConfigIssue
from voiceflow.config.explain import PLANNED_TRANSPORTS, issue_for
from voiceflow.config.limits import DEFAULT_LIMITS, YamlLimits
from voiceflow.config.reading import read_agent_text
from voiceflow.config.yaml_source import load_yaml

if TYPE_CHECKING:
    from voiceflow.plugins.registry import PluginRegistry

__all__ = ["PLANNED_TRANSPORTS", "YamlLimits", "load_agent", "parse_agent"]

def load_agent(
    path: str | FsPath,
    registry: PluginRegistry,
    env: Mapping[str, str] | None = None,
    *,
    limits: YamlLimits = DEFAULT_LIMITS,
) -> AgentConfig:
    """Read and validate an agent file. Raises :class:`ConfigError` listing every problem."""
    filename = str(path)
    try:
        text = read_agent_text(path, limits)
        base_dir = FsPath(path).resolve().parent
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        raise internal_error(filename, exc) from exc
    return parse_agent(text, filename, registry, env, base_dir=base_dir, limits=limits)


def parse_agent(
    text: str,
    filename: str,
    registry: PluginRegistry,
    env: Mapping[str, str] | None = None,
    *,
    base_dir: FsPath | None = None,
    limits: YamlLimits = DEFAULT_LIMITS,
) -> AgentConfig:
    """Validate agent YAML text. Relative paths in provider configs resolve against ``base_dir``
    (the agent file's folder), passed to validators as ``info.context["base_dir"]``."""
    try:
        return _parse(text, filename, registry, env, base_dir, limits)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - see load_agent
        raise internal_error(filename, exc) from exc


def internal_error(filename: str, exc: BaseException) -> ConfigError:
    """A bug of ours met while checking ``filename``, as an issue of that file."""
    message = f"internal error while checking this file ({type(exc).__name__}: {exc}); please report it"
    return ConfigError([ConfigIssue(filename, None, None, (), message)])


def _parse(
    text: str,
    filename: str,
    registry: PluginRegistry,
    env: Mapping[str, str] | None,
    base_dir: FsPath | None,
    limits: YamlLimits,
) -> AgentConfig:
    data, source = load_yaml(text, filename, env, limits)
    model = registry.agent_model
    if data is None:
        required = [name for name, field in model.model_fields.items() if field.is_required()]
        message = "the file is empty" + ("" if not text else " (only blank lines or comments)")
        if required:
            message += f"; an agent file needs at least: {', '.join(required)}"
        raise ConfigError([ConfigIssue(filename, 1, 1, (), message)])
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(filename, 1, 1, (), "an agent file must be a mapping of fields")])
    try:
        agent = model.model_validate(data, context={"base_dir": base_dir or FsPath.cwd()})
    except ValidationError as exc:
        errors = exc.errors()
        issues = [issue_for(error, data, source, model, registry) for error in errors[: limits.max_issues]]
        if len(errors) > limits.max_issues:
            rest = len(errors) - limits.max_issues
            message = f"{rest} more problems not listed (limit max_issues={limits.max_issues}); fix these first"
            issues.append(ConfigIssue(filename, None, None, (), message))
        raise ConfigError(issues) from None
    return typing.cast(AgentConfig, agent)
