"""From YAML text to a tree of nodes, refusing what would cost unbounded time, memory or stack.

PyYAML's own composer and any builder that walks its nodes recurse once per nesting level, so
10,000 ``[`` overflow the stack, and a node reached through an alias is shared, so a walk of a
"billion laughs" file visits 10^9 nodes. This composer reads the event stream (the parser is
iterative) with an explicit stack and knows, for every node, how many values it expands to and how
deep it nests once aliases are followed; past :class:`~voiceflow.config.limits.YamlLimits` it
stops at the offending spot, before anything is built. An alias to a value that contains it is
refused too, so the tree it returns has no cycles.

libyaml (``yaml.CSafeLoader``) parses when PyYAML was built with it, pure Python otherwise; both
give line and column in characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from voiceflow.config.errors import ConfigError, ConfigIssue, line_column
from voiceflow.config.limits import YamlLimits

Path = tuple[str | int, ...]

PARSER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml when available: ten times faster on big input than the pure-Python parser."""

_NOT_YAML_TEXT = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CONTROL_NAMES = {0x00: "NUL", 0x07: "BEL", 0x08: "BS", 0x0B: "VT", 0x0C: "FF", 0x1B: "ESC", 0x7F: "DEL"}


@dataclass
class _Open:
    """A collection being composed, with what its finished children add up to."""

    node: yaml.MappingNode | yaml.SequenceNode
    size: int = 1
    height: int = 1
    key: yaml.Node | None = None
    index: int = 0


class _Composer:
    def __init__(self, text: str, filename: str, limits: YamlLimits) -> None:
        self.text = text
        self.filename = filename
        self.limits = limits
        self.resolver = yaml.SafeLoader("")
        self.anchors: dict[str, yaml.Node] = {}
        self.size: dict[int, int] = {}
        self.height: dict[int, int] = {}
        self.stack: list[_Open] = []
        self.open_ids: set[int] = set()
        self.alias_nodes = 0
        self.values = 0
        self.root: yaml.Node | None = None
        self.documents = 0

    def run(self) -> yaml.Node | None:
        for event in yaml.parse(self.text, Loader=PARSER):
            if isinstance(event, yaml.DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    raise self.error(event.start_mark, "invalid YAML: expected one document, found a second one")
            elif isinstance(event, yaml.AliasEvent):
                self.alias(event)
            elif isinstance(event, yaml.ScalarEvent):
                self.count(event.start_mark)
                tag = self.tag(event.tag, yaml.ScalarNode, event.value, event.implicit)
                node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
                self.anchor(event.anchor, node, event.start_mark)
                self.finish(node, 1, 0)
            elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                self.start(event)
            elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                done = self.stack.pop()
                self.open_ids.discard(id(done.node))
                done.node.end_mark = event.end_mark
                self.finish(done.node, done.size, done.height)
        return self.root

    def tag(self, tag: str | None, kind: type[yaml.Node], value: str | None, implicit: object) -> str:
        if tag is None or tag == "!":
            return str(self.resolver.resolve(kind, value, implicit))
        return tag

    def count(self, mark: yaml.Mark) -> None:
        self.values += 1
        if self.values > self.limits.max_values:
            limit = self.limits.max_values
            raise self.error(mark, f"more than {limit} values in one file (limit max_values={limit})")

    def start(self, event: yaml.SequenceStartEvent | yaml.MappingStartEvent) -> None:
        self.count(event.start_mark)
        depth = len(self.stack) + 1
        if depth > self.limits.max_depth:
            raise self.error(event.start_mark, self._too_deep())
        node: yaml.MappingNode | yaml.SequenceNode
        if isinstance(event, yaml.MappingStartEvent):
            tag = self.tag(event.tag, yaml.MappingNode, None, event.implicit)
            node = yaml.MappingNode(tag, [], event.start_mark, None, flow_style=event.flow_style)
        else:
            tag = self.tag(event.tag, yaml.SequenceNode, None, event.implicit)
            node = yaml.SequenceNode(tag, [], event.start_mark, None, flow_style=event.flow_style)
        self.anchor(event.anchor, node, event.start_mark)
        self.stack.append(_Open(node))
        self.open_ids.add(id(node))

    def alias(self, event: yaml.AliasEvent) -> None:
        name = event.anchor
        target = self.anchors.get(name) if name is not None else None
        if target is None:
            raise self.error(event.start_mark, f"invalid YAML: alias *{name} is used before any &{name} defines it")
        if id(target) in self.open_ids:
            raise self.error(event.start_mark, f"invalid YAML: alias *{name} refers to a value that contains it")
        size, height = self.size[id(target)], self.height[id(target)]
        self.alias_nodes += size
        if self.alias_nodes > self.limits.max_alias_nodes:
            raise self.error(
                event.start_mark,
                f"aliases expand to more than {self.limits.max_alias_nodes} values "
                f"(limit max_alias_nodes={self.limits.max_alias_nodes}; is this an alias bomb?)",
            )
        if len(self.stack) + height > self.limits.max_depth:
            raise self.error(event.start_mark, self._too_deep(f" once *{name} is expanded"))
        self.finish(target, size, height)

    def anchor(self, name: str | None, node: yaml.Node, mark: yaml.Mark) -> None:
        if name is None:
            return
        if name in self.anchors:
            first = self.anchors[name].start_mark.line + 1
            raise self.error(mark, f"invalid YAML: anchor &{name} is defined twice (first at line {first})")
        self.anchors[name] = node

    def finish(self, node: yaml.Node, size: int, height: int) -> None:
        """A node is complete: add it to the collection it belongs to (or make it the root)."""
        self.size[id(node)], self.height[id(node)] = size, height
        if not self.stack:
            self.root = node
            return
        parent = self.stack[-1]
        parent.size += size
        parent.height = max(parent.height, height + 1)
        if isinstance(parent.node, yaml.SequenceNode):
            parent.node.value.append(node)
            parent.index += 1
        elif parent.key is None:
            parent.key = node
        else:
            parent.node.value.append((parent.key, node))
            parent.key = None

    def _too_deep(self, why: str = "") -> str:
        return f"nested deeper than {self.limits.max_depth} levels{why} (limit max_depth={self.limits.max_depth})"

    def path(self) -> Path:
        """Where the composer is, as a field path: for messages about the spot it stopped at."""
        path: list[str | int] = []
        for frame in self.stack:
            if isinstance(frame.node, yaml.SequenceNode):
                path.append(frame.index)
            elif isinstance(frame.key, yaml.ScalarNode):
                path.append(frame.key.value)
            else:
                break
        return tuple(path)

    def error(self, mark: yaml.Mark, message: str) -> ConfigError:
        issue = ConfigIssue(self.filename, mark.line + 1, mark.column + 1, self.path(), message)
        return ConfigError([issue])


def compose(text: str, filename: str, limits: YamlLimits) -> yaml.Node | None:
    """The single document in ``text`` as a node tree (None if it has none), or a ConfigError."""
    refuse_control_characters(text, filename)
    try:
        return _Composer(text, filename, limits).run()
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_issue(exc, filename, limits)]) from None
    except yaml.reader.ReaderError as exc:
        line, column = line_column(text, exc.position)
        issue = ConfigIssue(filename, line, column, (), f"invalid YAML: {exc.reason}")
        raise ConfigError([issue]) from None


def refuse_control_characters(text: str, filename: str) -> None:
    """YAML allows no control characters but tab and line breaks; say which one, and where."""
    found = _NOT_YAML_TEXT.search(text)
    if found is None:
        return
    code = ord(found.group())
    name = _CONTROL_NAMES.get(code)
    what = f"U+{code:04X}" + (f" ({name})" if name else "")
    line, column = line_column(text, found.start())
    message = (
        f"the character {what} is not allowed in YAML text (inside double quotes it can be written "
        "as an escape such as \\x1b)"
    )
    raise ConfigError([ConfigIssue(filename, line, column, (), message)])


def _syntax_issue(exc: yaml.MarkedYAMLError, filename: str, limits: YamlLimits) -> ConfigIssue:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = str(exc.problem or exc)
    if "maximum nesting depth" in message:  # libyaml's own cap (1000) met while scanning ahead
        limit = limits.max_depth
        return ConfigIssue(filename, line, column, (), f"nested deeper than {limit} levels (limit max_depth={limit})")
    if exc.context:
        # "while parsing a flow sequence" says what was left open; its line is often the
        # useful one when the problem is only noticed at the end of the file.
        opened = exc.context_mark
        at = f" (line {opened.line + 1})" if opened and opened.line + 1 != line else ""
        message = f"{exc.context}{at}, {message}"
    return ConfigIssue(filename, line, column, (), f"invalid YAML: {message}")
