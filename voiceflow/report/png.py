"""A scene as a PNG, drawn with Pillow: the same shapes as the page, for people who would rather
look than read, and for pasting where HTML does not go (a chat, a ticket).

Pillow is an optional extra (``voiceflow[report]``): the HTML report needs nothing beyond
voiceflow itself. Text uses Pillow's own scalable default font (bundled with Pillow's FreeType
build since 10.1), so the picture looks the same on a server without any font installed.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from voiceflow.report.scene import Line, Rect, Scene, Text

INSTALL_HINT = "the PNG needs Pillow: pip install 'voiceflow[report]'"
ANCHORS = {"start": "ls", "middle": "ms", "end": "rs"}
DASH, GAP = 4, 3


class PngUnavailable(RuntimeError):
    """Pillow is not installed."""


def _pillow() -> Any:
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise PngUnavailable(INSTALL_HINT) from None
    return Image, ImageDraw, ImageFont


@cache
def _font(size: int) -> Any:
    _, _, image_font = _pillow()
    try:
        return image_font.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow built without FreeType: its fixed bitmap font
        return image_font.load_default()


def _dashed(draw: Any, line: Line, scale: float) -> None:
    """Pillow has no dash pattern: short segments along the line (vertical and horizontal only,
    which is all a waterfall draws dashed)."""
    x1, y1, x2, y2 = (v * scale for v in (line.x1, line.y1, line.x2, line.y2))
    length = max(abs(x2 - x1), abs(y2 - y1))
    step = (DASH + GAP) * scale
    position = 0.0
    while position < length:
        end = min(position + DASH * scale, length)
        a, b = position / length, end / length
        draw.line([(x1 + (x2 - x1) * a, y1 + (y2 - y1) * a), (x1 + (x2 - x1) * b, y1 + (y2 - y1) * b)],
                  fill=line.color, width=max(1, round(line.width * scale)))
        position += step


def render_png(scene: Scene, scale: int = 1) -> Any:
    """The scene as a Pillow image, ``scale`` times its size in pixels. The default font has no
    bold face: from scale 2 up, bold is the regular face outlined in its own colour."""
    image_module, image_draw, _ = _pillow()
    image = image_module.new("RGB", (scene.width * scale, scene.height * scale), scene.background)
    draw = image_draw.Draw(image)
    for shape in scene.shapes:
        if isinstance(shape, Rect):
            box = [shape.x * scale, shape.y * scale, (shape.x + shape.width) * scale, (shape.y + shape.height) * scale]
            draw.rectangle(box, fill=shape.fill, outline=shape.stroke, width=2 * scale if shape.stroke else 0)
        elif isinstance(shape, Line):
            if shape.dashed:
                _dashed(draw, shape, scale)
            else:
                draw.line([(shape.x1 * scale, shape.y1 * scale), (shape.x2 * scale, shape.y2 * scale)],
                          fill=shape.color, width=max(1, round(shape.width * scale)))
        elif isinstance(shape, Text):
            draw.text((shape.x * scale, shape.y * scale), shape.text, fill=shape.color,
                      font=_font(shape.size * scale), anchor=ANCHORS[shape.anchor],
                      stroke_width=scale // 2 if shape.bold else 0, stroke_fill=shape.color)
    return image


def write_png(scene: Scene, path: Path, scale: int = 1) -> None:
    render_png(scene, scale).save(path, format="PNG", optimize=True)
