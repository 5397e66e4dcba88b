"""A drawing as a list of shapes in pixels: what the SVG and the PNG are both made from.

Laying a waterfall out once and handing the same shapes to two small painters keeps the page and
the picture identical to the pixel, and keeps each painter ignorant of stages and turns. Only
what both can draw exactly is here: solid rectangles, (dashed) lines and one-line text.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

Anchor = Literal["start", "middle", "end"]


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    fill: str
    stroke: str | None = None
    title: str = ""
    """Shown on hover in the page; the picture has no hover, so layouts never rely on it."""


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    color: str
    width: float = 1.0
    dashed: bool = False


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    """The baseline."""
    text: str
    color: str
    size: int = 12
    anchor: Anchor = "start"
    bold: bool = False


Shape = Rect | Line | Text


@dataclass
class Scene:
    width: int
    height: int
    shapes: list[Shape] = field(default_factory=list)
    background: str = "#ffffff"


def moved(shape: Shape, dy: float) -> Shape:
    if isinstance(shape, Line):
        return replace(shape, y1=shape.y1 + dy, y2=shape.y2 + dy)
    return replace(shape, y=shape.y + dy)


def stack(scenes: list[Scene], gap: int = 0) -> Scene:
    """Scenes one below the other, as wide as the widest (the PNG of a whole report)."""
    out = Scene(max((scene.width for scene in scenes), default=1), 0)
    for scene in scenes:
        out.shapes += [moved(shape, out.height) for shape in scene.shapes]
        out.height += scene.height + gap
    out.height = max(1, out.height - gap)
    return out
