"""Configuration errors that say where, what and what was expected, one line each.

A hostile file can put anything into a key or a value (a newline, an ESC sequence that repaints
the terminal, a lone surrogate that cannot even be printed), and those reach messages through
field paths and quoted inputs. So an issue never holds a control character: they are written as
escapes, and a line of output is always exactly one problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
MAX_MESSAGE = 1000
"""Characters kept of one message: a 1 MiB key must not become a 1 MiB line."""


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` with control, line-break, bidi and surrogate characters escaped, and cut to ``limit``."""
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return _UNSAFE.sub(lambda m: m.group(0).encode("unicode_escape", "backslashreplace").decode("ascii"), text)


def line_column(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``text[index]``, counting line breaks the way YAML does."""
    lines = _BREAK.split(text[:index])
    return len(lines), len(lines[-1]) + 1


_PLAIN_KEY = re.compile(r"[\w-]+")


def format_path(path: tuple[str | int, ...]) -> str:
    """``("stt", 0, "model")`` → ``stt[0].model``; a key that is not a plain word is quoted
    (``prompt[' x.y']``), so a path always reads one way."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(top level)"


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    filename: str
    line: int | None
    column: int | None
    path: tuple[str | int, ...]
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", one_line(self.message, MAX_MESSAGE) or "invalid")

    def __str__(self) -> str:
        where = one_line(self.filename)
        if self.line is not None:
            where += f":{self.line}:{self.column}"
        return f"{where}: {one_line(format_path(self.path), 200)}: {self.message}"


class ConfigError(Exception):
    """One or more problems in an agent file; ``str()`` lists them one per line."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))
