"""Turning pydantic's validation errors into issues a person can act on.

Each error becomes ``file:line:col: field.path: message``: the position comes from the YAML source
map, the path leaves out what is not in the file (union tags), and the message says what was
expected, the allowed range where a number was wrong, and what was given, unless what was given
is a secret or came from the environment.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import TYPE_CHECKING, Any, Literal

import annotated_types
from pydantic import BaseModel, SecretStr

from voiceflow.config.errors import ConfigIssue, format_path
from voiceflow.config.yaml_source import Path, SourceMap

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

    from voiceflow.plugins.registry import PluginRegistry

PLANNED_TRANSPORTS = {
    "web": "the browser transport",
    "twilio": "the Twilio Media Streams phone transport",
    "local": "the local sound-device transport",
}
"""Transports the project plans but this version does not ship, to say so instead of 'unknown'."""

_NO_ECHO = {"bool_not_number", "path_problem", "stage_not_installed", "validator_crashed"}
"""Errors whose message already says what was given."""

_RANGE_HINT = {
    "finite_number", "bool_not_number", "float_parsing", "int_parsing", "float_type", "int_type",
    "int_from_float",
}
"""Errors about a number that do not state its range themselves."""


def issue_for(
    error: ErrorDetails, data: Any, source: SourceMap, model: type[BaseModel], registry: PluginRegistry
) -> ConfigIssue:
    loc = tuple(error["loc"])
    path = _data_path(data, loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        owner = _model_at(model, loc[:-1])
        known = sorted(owner.model_fields) if owner else []
        message = f"unknown field {_shown(key)}" + _suggest(key, known)
        if known:
            message += f" (allowed here: {', '.join(known)})"
        return _at(source, path, message, key=True)
    if kind in {"union_tag_invalid", "union_tag_not_found"} or (
        kind == "literal_error" and loc and loc[-1] == "provider"
    ):
        return _provider_issue(data, source, path, registry)
    if kind == "missing":
        return _at(source, path[:-1], f"missing required field {str(loc[-1])!r}")
    message = error["msg"].removeprefix("Value error, ")
    if kind in _RANGE_HINT:
        message += _allowed_range(model, loc)
    given = error.get("input")
    if kind in _NO_ECHO or isinstance(given, dict | list):
        pass
    elif path in source.interpolated:
        message += f", got the value of {source.interpolated[path][:80]} (not shown)"
    elif not _is_secret(model, loc):
        message += f", got {_shown(given)}"
    return _at(source, path, message)


def _shown(value: Any) -> str:
    """``repr`` of a given value, cut short: a 1 MiB string is not repeated back."""
    text = repr(value)
    if len(text) <= 80:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:60]}…{size}"


def _allowed_range(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    owner = _model_at(model, loc[:-1]) if loc else None
    name = loc[-1] if loc else None
    if owner is None or not isinstance(name, str) or name not in owner.model_fields:
        return ""
    low = high = ""
    for rule in owner.model_fields[name].metadata:
        if isinstance(rule, annotated_types.Gt):
            low = f"{rule.gt} < "
        elif isinstance(rule, annotated_types.Ge):
            low = f"{rule.ge} <= "
        elif isinstance(rule, annotated_types.Lt):
            high = f" < {rule.lt}"
        elif isinstance(rule, annotated_types.Le):
            high = f" <= {rule.le}"
    return f" (allowed: {low}{name}{high})" if low or high else ""


def _provider_issue(data: Any, source: SourceMap, path: Path, registry: PluginRegistry) -> ConfigIssue:
    from voiceflow.config.compose import STAGES
    from voiceflow.providers import ProviderKind

    stage = str(path[0]) if path else ""
    kinds = {name: kind for name, kind, _ in STAGES} | {"transport": ProviderKind.TRANSPORT}
    names = [i.name for i in registry.providers(kinds[stage])] if stage in kinds else []
    block = path if path and path[-1] != "provider" else path[:-1]
    given = _get(data, (*block, "provider"))
    if given is None:
        return _at(source, block, f"missing 'provider:' (one of: {', '.join(names)})")
    if stage == "transport" and isinstance(given, str) and given in PLANNED_TRANSPORTS:
        message = (
            f"{PLANNED_TRANSPORTS[given]} ({given!r}) is not built yet in this version of "
            "voiceflow; use 'provider: file' or run with --input FILE.wav"
        )
    else:
        shown = _shown(given) if (*block, "provider") not in source.interpolated else "(from the environment)"
        message = (
            f"unknown {stage} provider {shown}" + _suggest(str(given), names)
            + f" (installed: {', '.join(names) or 'none'}; `voiceflow plugins` lists them)"
        )
    return _at(source, (*block, "provider"), message)


def _at(source: SourceMap, path: Path, message: str, *, key: bool = False) -> ConfigIssue:
    position = source.position(path, key=key)
    line, column = position if position else (None, None)
    return ConfigIssue(source.filename, line, column, path, source.redact(message))


def _suggest(word: str, options: list[str]) -> str:
    if len(word) > 100:  # difflib is quadratic; no field name is that long
        return ""
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _data_path(data: Any, loc: tuple[Any, ...]) -> Path:
    """Pydantic's location minus the parts that are not in the file (union tags, validators)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part not in node:
            if part in _tags(node):
                continue
            path.append(part)
            node = None
    return tuple(path)


def _tags(node: dict[str, Any]) -> set[str]:
    provider = node.get("provider")
    return {provider} if isinstance(provider, str) else set()


def _get(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types an annotation may hold (through Annotated, Optional and unions)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Which config model sits at ``loc`` (for listing its fields in an error)."""
    candidates: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for candidate in candidates:
            origin = typing.get_origin(candidate)
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                if isinstance(part, str) and part in candidate.model_fields:
                    following += _unwrap(candidate.model_fields[part].annotation)
                elif _provider_tag(candidate) == part:
                    following.append(candidate)
            elif origin is list and isinstance(part, int):
                following += _unwrap(typing.get_args(candidate)[0])
            elif origin is dict:
                following += _unwrap(typing.get_args(candidate)[1])
        candidates = following
    models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return models[0] if len(models) == 1 else None


def _provider_tag(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("provider")
    if field is None or typing.get_origin(field.annotation) is not Literal:
        return None
    return str(typing.get_args(field.annotation)[0])


def _is_secret(model: type[BaseModel], loc: tuple[Any, ...]) -> bool:
    owner = _model_at(model, loc[:-1]) if loc else None
    if owner is None or not isinstance(loc[-1], str) or loc[-1] not in owner.model_fields:
        return any(word in format_path(loc).lower() for word in ("key", "secret", "token", "password"))
    return SecretStr in _unwrap(owner.model_fields[loc[-1]].annotation)
