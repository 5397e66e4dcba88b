"""Reading YAML while remembering where every value came from, and interpolating ``${ENV}``.

:func:`~voiceflow.config.yaml_compose.compose` gives nodes with line and column marks (and has
already refused bombs and deep nesting); we build plain Python data from them and keep a map from
each value's path (``("stt", 0, "model")``) to its position, so any later validation error can
point at the exact spot in the file. The map also remembers which values came from the
environment, so that no error message ever shows them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml

from voiceflow.config.errors import ConfigError, ConfigIssue
from voiceflow.config.limits import DEFAULT_LIMITS, YamlLimits
from voiceflow.config.yaml_compose import Path, compose

__all__ = ["Path", "SourceMap", "interpolate", "load_yaml"]

MIN_REDACTED = 4
"""Environment values shorter than this are not hunted in messages: hiding every "1" or "en"
would garble messages and protect nothing."""

_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class SourceMap:
    """Positions (1-based line, column) of values and of mapping keys, by path.

    ``interpolated`` holds, for each value that used ``${VAR}``, the text as written; and
    ``env_values`` every value substituted from the environment (by variable name): neither may
    appear in an error message.
    """

    filename: str
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    interpolated: dict[Path, str] = field(default_factory=dict)
    env_values: dict[str, str] = field(default_factory=dict)

    def position(self, path: Path, *, key: bool = False) -> tuple[int, int] | None:
        """The closest known position for ``path``: the value itself, else its nearest parent."""
        table = self.keys if key else self.values
        if path in table:
            return table[path]
        for cut in range(len(path), -1, -1):
            prefix = path[:cut]
            if prefix in self.values:
                return self.values[prefix]
        return None

    def redact(self, message: str) -> str:
        """``message`` with every value substituted from the environment shown as ``${NAME}``: a
        validator may quote its input (a path check does), and the input may hold a key."""
        for name, value in sorted(self.env_values.items(), key=lambda item: -len(item[1])):
            if len(value) >= MIN_REDACTED:
                for form in {value, repr(value)[1:-1]}:
                    message = message.replace(form, f"${{{name}}}")
        return message


def interpolate(
    text: str,
    env: Mapping[str, str],
    where: tuple[str, int, int, Path],
    used: dict[str, str] | None = None,
) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}``; ``$$`` is a literal ``$``.

    Values taken from ``env`` are recorded in ``used`` (name → value).
    """

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env:
            if used is not None:
                used[name] = env[name]
            return env[name]
        if default is not None:
            return default
        filename, line, column, path = where
        raise ConfigError(
            [
                ConfigIssue(
                    filename,
                    line,
                    column,
                    path,
                    f"environment variable {name} is not set (write ${{{name}:-default}} to "
                    "give a default)",
                )
            ]
        )

    return _ENV.sub(substitute, text)


_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_VALUE = "tag:yaml.org,2002:value"  # a plain "=": YAML 1.1's default-value key, text to us


def _kind(node: yaml.Node) -> str:
    return {yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list"}.get(type(node), "a scalar")


class _Builder:
    """Plain data from a composed tree. The tree is acyclic and its expanded size and depth are
    bounded (the composer saw to that), so recursion here is bounded too."""

    def __init__(self, filename: str, env: Mapping[str, str]) -> None:
        self.map = SourceMap(filename)
        self.env = env
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.map.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            self._plain(node, path, _MAP)
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            self._plain(node, path, _SEQ)
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self._scalar(node, path)
        if isinstance(value, str) and "$" in value:
            line, column = self.map.values[path]
            where = (self.map.filename, line, column, path)
            if any(match.group(1) for match in _ENV.finditer(value)):
                self.map.interpolated[path] = value
            value = interpolate(value, self.env, where, self.map.env_values)
        return value

    def _plain(self, node: yaml.Node, path: Path, tag: str) -> None:
        # A scalar's tag is checked by its constructor; a collection's would be silently ignored.
        if node.tag != tag:
            raise self._error(node, path, f"invalid YAML value: tags such as {node.tag!r} are not allowed")

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        if node.tag == _VALUE:
            return str(node.value)
        with self._constructing(node, path):
            return self.constructor.construct_object(node, deep=True)

    @contextmanager
    def _constructing(self, node: yaml.Node, path: Path) -> Iterator[None]:
        """Unknown or unsafe tags (``!!python/...``), bad ``!!int``s and the like become issues."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - any constructor failure is the file's fault
            problem = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
            raise self._error(node, path, f"invalid YAML value: {problem}") from None

    def _error(self, node: yaml.Node, path: Path, message: str) -> ConfigError:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        return ConfigError([ConfigIssue(self.map.filename, line, column, path, message)])

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        """Keys written here override keys brought in by ``<<`` merges, as YAML specifies; among
        merged mappings the first one listed wins (as PyYAML does). Sources are built lowest
        priority first, so the winners' values and positions are the ones kept. Only written keys
        may not repeat."""
        result: dict[str, Any] = {}
        own_position = self.map.values[path]
        sources = [
            source
            for key_node, value_node in node.value
            if key_node.tag == _MERGE
            for source in self._merge_sources(value_node, path)
        ]
        for source in reversed(sources):
            result.update(self.build(source, path))
        self.map.values[path] = own_position
        written: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self._key(key_node, path)
            line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key in written:
                message = f"duplicate key {key!r} (first set at line {written[key]})"
                raise self._error(key_node, (*path, key), message)
            written[key] = line
            self.map.keys[(*path, key)] = (line, column)
            result[key] = self.build(value_node, (*path, key))
        return result

    def _merge_sources(self, value: yaml.Node, path: Path) -> list[yaml.MappingNode]:
        items = value.value if isinstance(value, yaml.SequenceNode) else [value]
        for item in items:
            if not isinstance(item, yaml.MappingNode):
                raise self._error(
                    value,
                    path,
                    "invalid YAML value: expected a mapping or list of mappings for merging "
                    f"(<<), but found {_kind(item)}",
                )
        return list(items)

    def _key(self, node: yaml.Node, path: Path) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self._error(node, path, f"keys must be text, got {_kind(node)}")
        key = self._scalar(node, path)
        if not isinstance(key, str):
            shown = repr(key)
            raise self._error(node, path, f"keys must be text, got {shown[:60]}")
        return key


def load_yaml(
    text: str,
    filename: str,
    env: Mapping[str, str] | None = None,
    limits: YamlLimits = DEFAULT_LIMITS,
) -> tuple[Any, SourceMap]:
    """Parse one YAML document into plain data plus its :class:`SourceMap`.

    The data is None when the text holds no document (empty, or only comments).
    """
    node = compose(text, filename, limits)
    builder = _Builder(filename, os.environ if env is None else env)
    if node is None:
        return None, builder.map
    return builder.build(node, ()), builder.map
