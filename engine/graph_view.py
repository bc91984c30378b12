"""``draw_graph``: the autograd graph behind a tensor, drawn as SVG (and PNG) with no tools.

One box per op (its class name, output shape and dtype, and its formula: the first
paragraph of the op class's docstring), one box per leaf that requires grad (named as in
``named_parameters()`` when ``params`` is given, else by its shape; after ``backward``,
with its gradient's shape), one arrow per recorded input, from the input down to the op
that used it; inputs that need no gradient (data, targets) are not recorded and not drawn.
Only the graph is read; nothing is computed. The boxes are placed by
:func:`engine.graph_layout.layered_layout` and drawn by :mod:`engine.graph_render`.
"""

from __future__ import annotations

import functools
import math
import importlib
import re
import textwrap
from pathlib import Path

from engine.function import AccumulateGrad, Function
from engine.graph_layout import layered_layout
from engine.graph_render import box_size, edge_path, write_png, write_svg
from engine.tensor import Tensor

FORMULA_COLUMNS = 46     # formula lines are wrapped to this many characters
FORMULA_LINES = 4        # at most this many of them, the last one ending in "…"


def _collect(root: Tensor):
    """The graph behind ``root``: its items (ops and leaves) and one edge per input.

    The one place that reads the recorded graph, through ``tensor.grad_fn`` and, per op
    node, ``node.edges`` (one entry per input: None when the input needs no gradient, else
    ``(producer, output_index, shape, dtype)`` with ``producer`` the op node that made the
    input or the ``AccumulateGrad`` node of a leaf, drawn as the leaf Tensor it holds)
    and ``node.out_meta`` (``(shape, dtype)`` per output of a multi-output op, None for
    single-output ops). Returns ``(items, edges)``: ops and
    leaves in depth-first order from ``root``, and ``(producer, output_index, consumer,
    input_slot, shape, dtype)`` per edge. Iterative, so deep graphs are fine.
    """
    start = root if root.grad_fn is None else root.grad_fn
    items, edges, seen = [], [], {start}
    stack = [start]
    while stack:
        item = stack.pop()
        items.append(item)
        if isinstance(item, Tensor):
            continue
        fresh = []
        for slot, edge in enumerate(item.edges):
            if edge is None:
                continue
            producer, index, shape, dtype = edge[0], edge[1], edge[2], edge[3]
            if isinstance(producer, AccumulateGrad):
                producer = producer.variable
            edges.append((producer, index, item, slot, tuple(shape), dtype))
            if producer not in seen:
                seen.add(producer)
                fresh.append(producer)
        stack.extend(reversed(fresh))          # the first input is visited first
    return items, edges


def output_meta(item, root: Tensor, produced: dict) -> list[tuple]:
    """``(shape, dtype)`` of each output of an op node (or of a leaf tensor); ``produced``
    holds what the edges recorded of each producer's output."""
    if isinstance(item, Tensor):
        return [(tuple(item.shape), item.dtype)]
    if item.out_meta is not None:
        return [(tuple(shape), dtype) for shape, dtype in item.out_meta]
    if item is root.grad_fn:
        return [(tuple(root.shape), root.dtype)]
    return [produced[item]]


@functools.lru_cache(maxsize=None)
def formula(op_class: type) -> str:
    """The first paragraph of the op's docstring, or of the reference op it points to."""
    doc = ""
    for klass in op_class.__mro__:
        if klass is Function:
            break
        doc = klass.__dict__.get("__doc__") or ""
        if doc:
            break
    first = " ".join(line.strip() for line in doc.strip().split("\n\n")[0].splitlines())
    target = re.search(r"formula:\s*:class:`~?([\w.]+)\.(\w+)`", first)
    if target:
        try:
            pointed = getattr(importlib.import_module(target.group(1)), target.group(2))
        except (ImportError, AttributeError):
            pointed = None
        if isinstance(pointed, type) and pointed is not op_class:
            return formula(pointed)
    first = re.sub(r":\w+:`~?(?:[\w.]*\.)?(\w+)`", r"\1", first)   # :class:`a.B` -> B
    return first.replace("``", "")


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _meta_text(metas: list[tuple]) -> str:
    shapes = [_shape_text(shape) for shape, _ in metas]
    dtypes = sorted({str(dtype) for _, dtype in metas})
    if len(set(shapes)) == 1 and len(shapes) > 1:
        shape = f"{len(shapes)} × {shapes[0]}"
    else:
        shape = ", ".join(shapes)
    return f"{shape} {'/'.join(dtypes)}"


def _wrap(text: str) -> list[str]:
    """Forward and backward formulas on their own lines, wrapped, at most FORMULA_LINES."""
    lines = []
    for part in text.split(";"):
        lines += textwrap.wrap(part.strip(), FORMULA_COLUMNS, break_on_hyphens=False)
    if len(lines) > FORMULA_LINES:
        lines = lines[:FORMULA_LINES]
        lines[-1] = lines[-1][:FORMULA_COLUMNS - 1] + "…"
    return lines


def _label(item, root: Tensor, produced: dict, names: dict):
    """``(kind, lines, tooltip)`` of one box; lines are ``(style, text)``."""
    meta = _meta_text(output_meta(item, root, produced))
    if isinstance(item, Tensor):
        name = names.get(item)
        lines = [("title", name), ("body", meta)] if name else [("title", meta)]
        if item.grad is not None:
            lines.append(("grad", f"grad {_shape_text(tuple(item.grad.shape))}"))
        return ("param" if name else "leaf"), lines, name or "leaf tensor"
    text = formula(type(item))
    lines = [("title", type(item).__name__), ("body", meta)]
    lines += [("formula", line) for line in _wrap(text)]
    return ("root" if item is root.grad_fn else "op"), lines, text


def _names(params) -> dict:
    """Tensor -> name, from ``named_parameters()`` pairs or a ``{name: tensor}`` dict."""
    if params is None:
        return {}
    pairs = params.items() if isinstance(params, dict) else params
    names = {}
    for name, t in pairs:
        if not isinstance(t, Tensor):
            raise TypeError(f"draw_graph: params must map names to tensors, got "
                            f"{type(t).__name__} for {name!r}")
        names.setdefault(t, str(name))
    return names


def _ports(edges, index: dict) -> list[tuple]:
    """Layout edges: an op's inputs enter its top side left to right in input order; the
    outputs of a multi-output op leave its bottom side left to right."""
    n_inputs, seen, ported = {}, {}, []
    for _, _, consumer, _, _, _ in edges:
        n_inputs[consumer] = n_inputs.get(consumer, 0) + 1
    for producer, out, consumer, _, _, _ in edges:
        k = seen[consumer] = seen.get(consumer, 0) + 1
        outputs = 1 if isinstance(producer, Tensor) else len(producer.out_meta or ((),))
        ported.append((index[producer], index[consumer], (out + 1) / (outputs + 1),
                       k / (n_inputs[consumer] + 1)))
    return ported


def _arrows(edges, ported, routes, corners, sizes) -> list[dict]:
    arrows = []
    for (producer, out, _, slot, shape, dtype), (s, t, ps, pt), route in zip(
            edges, ported, routes):
        (sx, sy), (sw, sh) = corners[s], sizes[s]
        (tx, ty), (tw, _) = corners[t], sizes[t]
        start, end = (sx + ps * sw, sy + sh), (tx + pt * tw, ty)
        multi = not isinstance(producer, Tensor) and producer.out_meta is not None
        arrows.append({"source": f"n{s}", "target": f"n{t}", "input": slot, "output": out,
                       "tooltip": _meta_text([(shape, dtype)]),
                       "port": str(out) if multi else None,
                       "path": edge_path(start, route, end)})
    return arrows


def draw_graph(tensor: Tensor, path, params=None, png: bool | None = None) -> list[Path]:
    """Draw the autograd graph of ``tensor``; returns the files written.

    ``path``: the SVG goes to ``path`` with the suffix ``.svg``, the PNG (rendered by
    matplotlib, where it is installed, unless ``png=False``) beside it with ``.png``.
    ``params``: ``model.named_parameters()`` or a ``{name: tensor}`` dict, to name leaves
    (as torchviz's ``make_dot``). Call it after ``backward`` to see the gradients' shapes.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"draw_graph: expected a Tensor, got {type(tensor).__name__}")
    if not tensor.requires_grad:
        raise ValueError(
            f"draw_graph: the tensor of shape {tensor.shape} does not require grad, so no "
            "graph was recorded (computed under no_grad, or from tensors that do not "
            "require grad?)"
        )
    names = _names(params)
    items, edges = _collect(tensor)
    produced = {producer: (shape, dtype) for producer, _, _, _, shape, dtype in edges}
    boxes = [_label(item, tensor, produced, names) for item in items]
    sizes = [box_size(lines) for _, lines, _ in boxes]
    ported = _ports(edges, {item: i for i, item in enumerate(items)})
    corners, routes, width, height = layered_layout(sizes, ported)
    width, height = math.ceil(width), math.ceil(height)   # whole pixels for SVG and PNG
    nodes = [(f"n{i}", kind, lines, tooltip, corner, size)
             for i, ((kind, lines, tooltip), corner, size) in enumerate(zip(boxes, corners,
                                                                             sizes))]
    arrows = _arrows(edges, ported, routes, corners, sizes)
    svg = Path(path).with_suffix(".svg")
    written = [write_svg(svg, nodes, arrows, width, height)]
    if png is not False:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            if png:
                raise ImportError("draw_graph: png=True needs matplotlib "
                                  "(pip install matplotlib)") from None
        else:
            written.append(write_png(svg.with_suffix(".png"), nodes, arrows, width, height))
    return written
