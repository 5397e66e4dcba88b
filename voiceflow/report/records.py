"""Timelines read back: the JSON `voiceflow run --timeline` writes, as typed records.

A report is often made on another machine, or long after the call, from files an older or newer
voiceflow wrote; so a missing field is an empty one and only a file that is not a timeline at all
is refused. A live call's timeline goes through the same ``as_dict`` form (:func:`call_from_dict`),
so the report of a call just run and of its JSON file are the same report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voiceflow.metrics.budget import BudgetMiss


class TimelineError(ValueError):
    """A file or folder that holds no timeline the report can read."""


@dataclass(frozen=True)
class ToolRecord:
    tool: str
    started: float
    seconds: float
    error: str | None = None


@dataclass
class TurnRecord:
    index: int
    kind: str
    outcome: str = ""
    user_text: str = ""
    agent_text: str = ""
    heard_text: str = ""
    marks: dict[str, float] = field(default_factory=dict)
    """Seconds since the call started."""
    providers: dict[str, str] = field(default_factory=dict)
    fallbacks: list[str] = field(default_factory=list)
    failure: str | None = None
    tools: list[ToolRecord] = field(default_factory=list)
    overlaps: list[str] = field(default_factory=list)
    endpointing: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    budget_misses: list[BudgetMiss] = field(default_factory=list)


@dataclass
class CallRecord:
    call_id: str
    source: str
    """Where it came from (a file's path), to tell calls apart in a folder's report."""
    turns: list[TurnRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """How the terminal names the call: its file if it came from one (call ids repeat across
        runs of the same recording), else its id."""
        return Path(self.source).name if self.source != self.call_id else self.call_id


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _number(value: Any, default: float = 0.0) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _tool(data: Any) -> ToolRecord | None:
    if not isinstance(data, Mapping):
        return None
    error = data.get("error")
    return ToolRecord(_text(data.get("tool")) or "tool", _number(data.get("started")), _number(data.get("seconds")),
                      str(error) if error else None)


def _miss(turn: int, data: Any) -> BudgetMiss | None:
    if not isinstance(data, Mapping) or not isinstance(data.get("span"), str):
        return None
    return BudgetMiss(turn, data["span"], _number(data.get("ms")) / 1000, _number(data.get("budget_ms")) / 1000,
                      _text(data.get("blame")) or data["span"], _number(data.get("blame_ms")) / 1000)


def turn_from_dict(data: Mapping[str, Any], position: int) -> TurnRecord:
    marks = data.get("marks")
    providers = data.get("providers")
    index = data.get("index")
    index = index if isinstance(index, int) and not isinstance(index, bool) else position
    return TurnRecord(
        index=index,
        kind=_text(data.get("kind")) or "turn",
        outcome=_text(data.get("outcome")),
        user_text=_text(data.get("user_text")),
        agent_text=_text(data.get("agent_text")),
        heard_text=_text(data.get("heard_text")),
        marks={str(k): _number(v) for k, v in marks.items() if isinstance(v, int | float)}
        if isinstance(marks, Mapping) else {},
        providers={str(k): str(v) for k, v in providers.items()} if isinstance(providers, Mapping) else {},
        fallbacks=_strings(data.get("fallbacks")),
        failure=_text(data.get("failure")) or None,
        tools=[tool for item in data.get("tools") or [] if (tool := _tool(item)) is not None],
        overlaps=_strings(data.get("overlaps")),
        endpointing=_strings(data.get("endpointing")),
        states=_strings(data.get("states")),
        budget_misses=[miss for item in data.get("budget_misses") or [] if (miss := _miss(index, item)) is not None],
    )


def call_from_dict(data: Any, source: str) -> CallRecord:
    """A call from a timeline's ``as_dict`` form; :class:`TimelineError` if it is not one."""
    if not isinstance(data, Mapping) or not isinstance(data.get("turns"), list):
        raise TimelineError(f"{source}: not a voiceflow timeline (no list of turns)")
    turns = [turn_from_dict(turn, i) for i, turn in enumerate(data["turns"]) if isinstance(turn, Mapping)]
    return CallRecord(_text(data.get("call_id")) or Path(source).stem, source, turns, _strings(data.get("notes")))


def read_call(path: Path) -> CallRecord:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TimelineError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TimelineError(f"{path}: not JSON ({exc})") from None
    return call_from_dict(data, str(path))


def read_calls(paths: Iterable[Path]) -> tuple[list[CallRecord], list[str]]:
    """Every call in ``paths``: files are timelines, folders are searched (recursively) for
    ``*.json`` files that are. Returns the calls and what was skipped in folders, and why; a file
    named on its own that is not a timeline is an error, a stray JSON file in a folder is not."""
    calls: list[CallRecord] = []
    skipped: list[str] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.rglob("*.json"))
            for candidate in found:
                try:
                    calls.append(read_call(candidate))
                except TimelineError as exc:
                    skipped.append(str(exc))
            if not found:
                raise TimelineError(f"{path}: no .json files in this folder")
        elif path.exists():
            calls.append(read_call(path))
        else:
            raise TimelineError(f"{path}: no such file or folder")
    if not calls:
        raise TimelineError("no timelines found" + (f" ({len(skipped)} files were not timelines)" if skipped else ""))
    return calls, skipped
