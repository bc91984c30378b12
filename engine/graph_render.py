"""Drawing of a laid-out graph (see :mod:`engine.graph_view`) as SVG and as PNG.

Both files are drawn from the same geometry. Text is monospace, so a box's width follows
from its longest line: DejaVu Sans Mono (matplotlib's own font, and the first choice in the
SVG) advances 0.602 em per character; :data:`CHAR_WIDTH` leaves a little to spare for
other monospace fonts. Combining marks (the hat of x̂) take no column.
"""

from __future__ import annotations

import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

FONT_SIZE = 12.0                      # px
CHAR_WIDTH = 0.62 * FONT_SIZE
LINE_HEIGHT = 1.3 * FONT_SIZE
PAD_X, PAD_Y = 8.0, 6.0
ARROW = 7.0                           # length of an arrow head
SVG_FONTS = "'DejaVu Sans Mono', Menlo, Consolas, 'Liberation Mono', monospace"
PNG_FONTS = ["DejaVu Sans Mono", "DejaVu Sans"]
MAX_PNG_PIXELS = 30000                # PNG sides are scaled down beyond this (Agg's limit)

BOX_STYLE = {        # kind: (fill, stroke, stroke width)
    "op": ("#e8f0fe", "#4a6fa5", 1.0),
    "root": ("#fff1d6", "#b7791f", 2.0),
    "param": ("#e6f4ea", "#3c8d5a", 1.0),
    "leaf": ("#f1f3f4", "#70757a", 1.0),
}
TEXT_STYLE = {       # style: (colour, bold)
    "title": ("#111111", True),
    "body": ("#333333", False),
    "formula": ("#1a4d8f", False),
    "grad": ("#a33a3a", False),
}
EDGE_COLOUR = "#5f6368"


def columns(text: str) -> int:
    """How many monospace columns ``text`` takes (combining marks: 0, wide characters: 2)."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
    return width


def box_size(lines) -> tuple[float, float]:
    """``(w, h)`` of a box holding ``lines`` (``(style, text)`` pairs)."""
    widest = max(columns(text) for _, text in lines)
    return widest * CHAR_WIDTH + 2 * PAD_X, len(lines) * LINE_HEIGHT + 2 * PAD_Y


def edge_path(start, route, end) -> list[tuple]:
    """Path commands from ``start`` through ``route`` to the arrow head above ``end``:
    ``("M", p)``, ``("L", p)`` for vertical runs, ``("C", c1, c2, p)`` for S-curves."""
    points = [start, *route, (end[0], end[1] - ARROW)]
    points = [p for k, p in enumerate(points)          # drop the inner points of straight runs
              if k in (0, len(points) - 1)
              or abs(points[k - 1][0] - p[0]) >= 0.5 or abs(points[k + 1][0] - p[0]) >= 0.5]
    commands = [("M", points[0])]
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        if abs(x1 - x0) < 0.5:
            commands.append(("L", (x1, y1)))
        else:
            mid = (y0 + y1) / 2
            commands.append(("C", (x0, mid), (x1, mid), (x1, y1)))
    return commands


def _arrow_head(end) -> list[tuple]:
    x, y = end
    return [(x - ARROW / 2, y - ARROW), (x + ARROW / 2, y - ARROW), (x, y)]


def _end(arrow) -> tuple:
    x, y = arrow["path"][-1][-1]
    return x, y + ARROW


def _text_lines(corner):
    """Baseline of each line in a box whose top-left corner is ``corner``."""
    x, y = corner
    for k in range(64):
        yield x + PAD_X, y + PAD_Y + (k + 0.78) * LINE_HEIGHT


def _f(v: float) -> str:
    return f"{v:.1f}"


def write_svg(path: Path, nodes, arrows, width: float, height: float) -> Path:
    """Edges first (under the boxes), then one ``<g class="node KIND">`` per box."""
    ns = "http://www.w3.org/2000/svg"
    ET.register_namespace("", ns)
    svg = ET.Element(f"{{{ns}}}svg", {
        "width": _f(width), "height": _f(height), "viewBox": f"0 0 {_f(width)} {_f(height)}",
        "font-family": SVG_FONTS, "font-size": _f(FONT_SIZE)})
    ET.SubElement(svg, f"{{{ns}}}rect", {"width": "100%", "height": "100%", "fill": "white"})
    for a in arrows:
        g = ET.SubElement(svg, f"{{{ns}}}g", {
            "class": "edge", "data-source": a["source"], "data-target": a["target"],
            "data-input": str(a["input"]), "data-output": str(a["output"])})
        ET.SubElement(g, f"{{{ns}}}title").text = a["tooltip"]
        d = " ".join(cmd + " " + " ".join(f"{_f(x)},{_f(y)}" for x, y in pts)
                     for cmd, *pts in a["path"])
        ET.SubElement(g, f"{{{ns}}}path", {"d": d, "fill": "none", "stroke": EDGE_COLOUR,
                                           "stroke-width": "1.2"})
        points = " ".join(f"{_f(x)},{_f(y)}" for x, y in _arrow_head(_end(a)))
        ET.SubElement(g, f"{{{ns}}}polygon", {"points": points, "fill": EDGE_COLOUR})
        if a["port"] is not None:
            (x, y), = a["path"][0][1:]
            t = ET.SubElement(g, f"{{{ns}}}text", {"x": _f(x + 3), "y": _f(y + 11),
                                                   "font-size": "10", "fill": EDGE_COLOUR})
            t.text = f"[{a['port']}]"
    for node_id, kind, lines, tooltip, corner, (w, h) in nodes:
        fill, stroke, stroke_width = BOX_STYLE[kind]
        g = ET.SubElement(svg, f"{{{ns}}}g", {"class": f"node {kind}", "id": node_id})
        ET.SubElement(g, f"{{{ns}}}title").text = tooltip
        ET.SubElement(g, f"{{{ns}}}rect", {
            "x": _f(corner[0]), "y": _f(corner[1]), "width": _f(w), "height": _f(h),
            "rx": "4", "fill": fill, "stroke": stroke, "stroke-width": str(stroke_width)})
        for (style, text), (x, y) in zip(lines, _text_lines(corner)):
            colour, bold = TEXT_STYLE[style]
            attrs = {"x": _f(x), "y": _f(y), "fill": colour, "class": style,
                     "xml:space": "preserve"}
            if bold:
                attrs["font-weight"] = "bold"
            ET.SubElement(g, f"{{{ns}}}text", attrs).text = text
    ET.ElementTree(svg).write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_png(path: Path, nodes, arrows, width: float, height: float) -> Path:
    """The same picture through matplotlib's Agg canvas (no pyplot, no window)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch, PathPatch, Polygon
    from matplotlib.path import Path as MplPath

    dpi = 100.0 * min(1.0, MAX_PNG_PIXELS / max(width, height))
    fig = Figure(figsize=(width / 100, height / 100), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    points_per_px = 72.0 / 100                   # 1 px of the SVG is 1/100 inch here
    codes = {"M": [MplPath.MOVETO], "L": [MplPath.LINETO], "C": [MplPath.CURVE4] * 3}
    for a in arrows:
        verts, kinds = [], []
        for cmd, *pts in a["path"]:
            verts += pts
            kinds += codes[cmd]
        ax.add_patch(PathPatch(MplPath(verts, kinds), fill=False, edgecolor=EDGE_COLOUR,
                               linewidth=1.2 * points_per_px))
        ax.add_patch(Polygon(_arrow_head(_end(a)), closed=True, color=EDGE_COLOUR))
        if a["port"] is not None:
            (x, y), = a["path"][0][1:]
            ax.text(x + 3, y + 11, f"[{a['port']}]", fontsize=10 * points_per_px,
                    family=PNG_FONTS, color=EDGE_COLOUR, va="baseline")
    for _, kind, lines, _, corner, (w, h) in nodes:
        fill, stroke, stroke_width = BOX_STYLE[kind]
        ax.add_patch(FancyBboxPatch(corner, w, h, boxstyle="round,pad=0,rounding_size=4",
                                    facecolor=fill, edgecolor=stroke,
                                    linewidth=stroke_width * points_per_px))
        for (style, text), (x, y) in zip(lines, _text_lines(corner)):
            colour, bold = TEXT_STYLE[style]
            ax.text(x, y, text, fontsize=FONT_SIZE * points_per_px, family=PNG_FONTS,
                    color=colour, weight="bold" if bold else "normal", va="baseline")
    fig.savefig(path, dpi=dpi, facecolor="white")
    return path
