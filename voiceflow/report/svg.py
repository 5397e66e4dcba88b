"""A scene as inline SVG: the page's waterfalls, with no script, font file or request of any kind.

Rectangles carry nothing but geometry and colour, so the page renders the same in any browser and
in a mail client; the text uses the reader's sans-serif font.
"""

from __future__ import annotations

from html import escape

from voiceflow.report.scene import Line, Rect, Scene, Shape

FONT = "DejaVu Sans, Verdana, Arial, sans-serif"


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _shape(shape: Shape) -> str:
    if isinstance(shape, Rect):
        stroke = f' stroke="{shape.stroke}" stroke-width="2"' if shape.stroke else ""
        tail = f"><title>{escape(shape.title)}</title></rect>" if shape.title else "/>"
        return (f'<rect x="{_number(shape.x)}" y="{_number(shape.y)}" width="{_number(shape.width)}" '
                f'height="{_number(shape.height)}" fill="{shape.fill}"{stroke}{tail}')
    if isinstance(shape, Line):
        dash = ' stroke-dasharray="4 3"' if shape.dashed else ""
        return (f'<line x1="{_number(shape.x1)}" y1="{_number(shape.y1)}" x2="{_number(shape.x2)}" '
                f'y2="{_number(shape.y2)}" stroke="{shape.color}" stroke-width="{_number(shape.width)}"{dash}/>')
    weight = ' font-weight="bold"' if shape.bold else ""
    return (f'<text x="{_number(shape.x)}" y="{_number(shape.y)}" font-size="{shape.size}" fill="{shape.color}" '
            f'text-anchor="{shape.anchor}"{weight}>{escape(shape.text)}</text>')


def to_svg(scene: Scene, title: str = "") -> str:
    """Standalone SVG markup (also valid XML, so it can be parsed and checked)."""
    head = f"<title>{escape(title)}</title>" if title else ""
    body = "".join(_shape(shape) for shape in scene.shapes)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{scene.width}" height="{scene.height}" '
            f'viewBox="0 0 {scene.width} {scene.height}" font-family="{FONT}" role="img">{head}'
            f'<rect width="100%" height="100%" fill="{scene.background}"/>{body}</svg>')
