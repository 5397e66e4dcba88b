"""Configuration errors that say where, what and what was expected."""

from __future__ import annotations

from dataclasses import dataclass


def format_path(path: tuple[str | int, ...]) -> str:
    """``("stt", 0, "model")`` → ``stt[0].model``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    filename: str
    line: int | None
    column: int | None
    path: tuple[str | int, ...]
    message: str

    def __str__(self) -> str:
        where = self.filename
        if self.line is not None:
            where += f":{self.line}:{self.column}"
        return f"{where}: {format_path(self.path)}: {self.message}"


class ConfigError(Exception):
    """One or more problems in an agent file; ``str()`` lists them one per line."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))
