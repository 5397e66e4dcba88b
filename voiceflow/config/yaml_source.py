"""Reading YAML while remembering where every value came from, and interpolating ``${ENV}``.

PyYAML's composer gives us nodes with line and column marks; we build plain Python data from them
and keep a map from each value's path (``("stt", 0, "model")``) to its position, so any later
validation error can point at the exact spot in the file.
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

Path = tuple[str | int, ...]

_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class SourceMap:
    """Positions (1-based line, column) of values and of mapping keys, by path."""

    filename: str
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

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


def interpolate(text: str, env: Mapping[str, str], where: tuple[str, int, int, Path]) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}``; ``$$`` is a literal ``$``."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env:
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


_PLAIN_COLLECTIONS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


class _Builder:
    def __init__(self, filename: str, env: Mapping[str, str]) -> None:
        self.map = SourceMap(filename)
        self.env = env
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.map.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_COLLECTIONS:
            # A scalar's tag is checked by its constructor; a collection's would be silently ignored.
            raise self._error(node, path, f"invalid YAML value: tags such as {node.tag!r} are not allowed")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        with self._constructing(node, path):
            value = self.constructor.construct_object(node, deep=True)
        if isinstance(value, str) and "$" in value:
            line, column = self.map.values[path]
            value = interpolate(value, self.env, (self.map.filename, line, column, path))
        return value

    @contextmanager
    def _constructing(self, node: yaml.Node, path: Path) -> Iterator[None]:
        """Unknown or unsafe tags (``!!python/...``), bad merges and bad ``!!int``s become issues."""
        try:
            yield
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise self._error(node, path, f"invalid YAML value: {problem}") from None

    def _error(self, node: yaml.Node, path: Path, message: str) -> ConfigError:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        return ConfigError([ConfigIssue(self.map.filename, line, column, path, message)])

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        # Keys written in this mapping itself, as opposed to ones brought in by a ``<<`` merge:
        # only those may not repeat; a written key overrides a merged one, as YAML specifies.
        written = {id(key) for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge"}
        with self._constructing(node, path):
            self.constructor.flatten_mapping(node)
        result: dict[str, Any] = {}
        seen: set[str] = set()
        for key_node, value_node in node.value:
            with self._constructing(key_node, path):
                key = self.constructor.construct_object(key_node, deep=True)
            line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if not isinstance(key, str):
                raise self._error(key_node, path, f"keys must be text, got {key!r}")
            if id(key_node) in written:
                if key in seen:
                    first = self.map.keys[(*path, key)]
                    raise self._error(
                        key_node, (*path, key), f"duplicate key {key!r} (first set at line {first[0]})"
                    )
                seen.add(key)
            self.map.keys[(*path, key)] = (line, column)
            result[key] = self.build(value_node, (*path, key))
        return result


def load_yaml(text: str, filename: str, env: Mapping[str, str] | None = None) -> tuple[Any, SourceMap]:
    """Parse one YAML document into plain data plus its :class:`SourceMap`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = str(exc.problem or exc)
        if exc.context:
            # "while parsing a flow sequence" says what was left open; its line is often the
            # useful one when the problem is only noticed at the end of the file.
            opened = exc.context_mark
            at = f" (line {opened.line + 1})" if opened and opened.line + 1 != line else ""
            message = f"{exc.context}{at}, {message}"
        raise ConfigError([ConfigIssue(filename, line, column, (), f"invalid YAML: {message}")]) from None
    builder = _Builder(filename, os.environ if env is None else env)
    if node is None:
        return {}, builder.map
    return builder.build(node, ()), builder.map
