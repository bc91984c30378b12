"""draw_graph: the SVG's boxes and arrows are the recorded graph, named, shaped, readable."""

import ast
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import engine
import losses
import nn
from engine import Function, Tensor, graph_render
from engine.function import AccumulateGrad
from engine.graph_view import formula
from engine.kernels import reference
from engine.ops.norm import LayerNorm

NS = {"svg": "http://www.w3.org/2000/svg"}


def parse(path):
    """``(nodes, edges)``: nodes by id with kind, text lines and rect; edges as dicts."""
    root = ET.parse(path).getroot()
    nodes, edges = {}, []
    for g in root.findall("svg:g", NS):
        classes = g.get("class").split()
        if classes[0] == "node":
            rect = g.find("svg:rect", NS)
            nodes[g.get("id")] = {
                "kind": classes[1],
                "lines": [t.text for t in g.findall("svg:text", NS)],
                "texts": g.findall("svg:text", NS),
                "rect": tuple(float(rect.get(k)) for k in ("x", "y", "width", "height")),
            }
        else:
            assert classes == ["edge"]
            edges.append({k: g.get(f"data-{k}") for k in ("source", "target", "input",
                                                             "output")}
                         | {"d": g.find("svg:path", NS).get("d"),
                            "head": g.find("svg:polygon", NS).get("points")})
    return nodes, edges


def titled_edges(nodes, edges):
    """Each edge as (source's first line, target's first line, input slot)."""
    return Counter((nodes[e["source"]]["lines"][0], nodes[e["target"]]["lines"][0],
                    int(e["input"])) for e in edges)


def mlp_loss(backward=True):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x = engine.randn(5, 4)
    loss = losses.cross_entropy(model(x), engine.tensor([0, 1, 2, 0, 1]))
    if backward:
        loss.backward()
    return model, loss


def walk(root):
    """The expected graph, read independently: op names, leaves, (producer, consumer,
    slot, output) per recorded input."""
    ops, leaves, links, stack, seen = [], [], [], [root.grad_fn], {root.grad_fn}
    while stack:
        node = stack.pop()
        ops.append(node)
        for slot, edge in enumerate(node.edges):
            if edge is None:
                continue
            producer = edge[0]
            if isinstance(producer, AccumulateGrad):       # a leaf's node: draw the leaf
                producer = producer.variable
            links.append((producer, node, slot, edge[1]))
            if producer not in seen:
                seen.add(producer)
                (leaves.append if isinstance(producer, Tensor) else stack.append)(producer)
    return ops, leaves, links


# ----------------------------------------------------------------------------- the MLP
def test_mlp_boxes_and_arrows_are_the_graph(tmp_path):
    model, loss = mlp_loss()
    engine.draw_graph(loss, tmp_path / "g.svg", params=model.named_parameters(), png=False)
    nodes, edges = parse(tmp_path / "g.svg")
    kinds = Counter(n["kind"] for n in nodes.values())
    assert kinds == {"op": 3, "root": 1, "param": 4}
    assert titled_edges(nodes, edges) == Counter([
        ("0.weight", "Linear", 1), ("0.bias", "Linear", 2), ("Linear", "ReLU", 0),
        ("ReLU", "Linear", 0), ("2.weight", "Linear", 1), ("2.bias", "Linear", 2),
        ("Linear", "CrossEntropy", 0)])
    by_title = {n["lines"][0]: n for n in nodes.values() if n["kind"] != "op"}
    assert by_title["CrossEntropy"]["kind"] == "root"
    assert by_title["CrossEntropy"]["lines"][1] == "() float32"
    assert by_title["0.weight"]["lines"] == ["0.weight", "(8, 4) float32", "grad (8, 4)"]
    assert by_title["2.bias"]["lines"] == ["2.bias", "(3,) float32", "grad (3,)"]
    relu = next(n for n in nodes.values() if n["lines"][0] == "ReLU")
    assert relu["lines"][1:3] == ["(5, 8) float32", "y = max(x, 0)"]
    shapes = sorted(n["lines"][1] for n in nodes.values() if n["lines"][0] == "Linear")
    assert shapes == ["(5, 3) float32", "(5, 8) float32"]
    linear = next(n for n in nodes.values() if n["lines"][0] == "Linear")
    assert linear["lines"][2].startswith("y = x Wᵀ + b")


def test_leaves_are_named_from_a_dict_or_by_their_shape(tmp_path):
    w = engine.randn(3, 2, requires_grad=True)
    b = engine.zeros(2, requires_grad=True)
    x = engine.randn(4, 3)                            # no gradient: not drawn
    y = (x @ w + b).tanh().sum()
    engine.draw_graph(y, tmp_path / "named.svg", params={"W": w}, png=False)
    nodes, _ = parse(tmp_path / "named.svg")
    leaves = {n["kind"]: n["lines"] for n in nodes.values() if n["kind"] in ("param", "leaf")}
    assert leaves == {"param": ["W", "(3, 2) float32"], "leaf": ["(2,) float32"]}
    assert len(nodes) == 2 + 4                       # MatMul, Add, Tanh, Sum


def test_gradient_shapes_appear_only_after_backward(tmp_path):
    model, loss = mlp_loss(backward=False)
    engine.draw_graph(loss, tmp_path / "before.svg", model.named_parameters(), png=False)
    loss.backward()
    engine.draw_graph(loss, tmp_path / "after.svg", model.named_parameters(), png=False)
    before, _ = parse(tmp_path / "before.svg")
    after, _ = parse(tmp_path / "after.svg")
    grads = lambda nodes: sorted(line for n in nodes.values() for line in n["lines"]
                                 if line.startswith("grad "))
    assert grads(before) == []
    assert grads(after) == ["grad (3, 8)", "grad (3,)", "grad (8, 4)", "grad (8,)"]


# ----------------------------------------------------------------------------- the LSTM
@pytest.mark.parametrize("fused_on", [False, True])
def test_lstm_step_boxes_and_arrows_are_the_graph(tmp_path, fused_on):
    cell = nn.LSTMCell(3, 4)
    h0 = engine.randn(2, 4, requires_grad=True)
    with engine.use_fused(fused_on):
        h, c = cell(engine.randn(2, 3), (h0, engine.zeros(2, 4)))
        loss = (h * c).sum()
    loss.backward()
    engine.draw_graph(loss, tmp_path / "lstm.svg", params=cell.named_parameters(), png=False)
    nodes, edges = parse(tmp_path / "lstm.svg")
    ops, leaves, links = walk(loss)
    names = dict((t, n) for n, t in cell.named_parameters())
    title = lambda item: (names.get(item, "(2, 4) float32") if isinstance(item, Tensor)
                          else type(item).__name__)
    assert Counter(n["lines"][0] for n in nodes.values()) == Counter(
        [title(op) for op in ops] + [title(leaf) for leaf in leaves])
    assert titled_edges(nodes, edges) == Counter(
        (title(src), title(dst), slot) for src, dst, slot, _ in links)
    assert {n["lines"][0] for n in nodes.values() if n["kind"] == "param"} == {
        "weight_ih", "weight_hh", "bias_ih", "bias_hh"}
    assert sum(n["lines"] == ["(2, 4) float32", "grad (2, 4)"] for n in nodes.values()) == 1
    if fused_on:
        step = next(n for n in nodes.values() if n["lines"][0] == "LSTMCellFunction")
        assert step["lines"][1] == "2 × (2, 4) float32"
        assert sorted(e["output"] for e in edges
                      if nodes[e["source"]] is step) == ["0", "1"]
    else:
        split = next(n for n in nodes.values() if n["lines"][0] == "Split")
        assert split["lines"][1] == "4 × (2, 4) float32"
        assert sorted(e["output"] for e in edges
                      if nodes[e["source"]] is split) == ["0", "1", "2", "3"]
        assert Counter(n["lines"][0] for n in nodes.values())["Sigmoid"] == 3


# ----------------------------------------------------------------------------- geometry
def test_text_fits_in_its_box_and_boxes_do_not_overlap(tmp_path):
    FontProperties = pytest.importorskip("matplotlib.font_manager").FontProperties
    TextToPath = pytest.importorskip("matplotlib.textpath").TextToPath

    cell = nn.LSTMCell(3, 4)
    with engine.use_fused(False):
        h, c = cell(engine.randn(2, 3))
    engine.draw_graph(h.sum() + c.sum(), tmp_path / "g.svg", cell.named_parameters(),
                      png=False)
    nodes, edges = parse(tmp_path / "g.svg")
    measure = TextToPath()
    for n in nodes.values():
        x, y, w, h = n["rect"]
        for t in n["texts"]:
            weight = t.get("font-weight", "normal")
            prop = FontProperties(family="DejaVu Sans Mono", weight=weight,
                                  size=graph_render.FONT_SIZE)
            width, height, descent = measure.get_text_width_height_descent(t.text, prop,
                                                                           False)
            tx, ty = float(t.get("x")), float(t.get("y"))
            assert x < tx and tx + width < x + w, (t.text, width, w)
            assert y < ty - (height - descent) and ty + descent < y + h, t.text
    rects = [n["rect"] for n in nodes.values()]
    for i, (x0, y0, w0, h0) in enumerate(rects):
        for x1, y1, w1, h1 in rects[i + 1:]:
            assert x0 + w0 <= x1 or x1 + w1 <= x0 or y0 + h0 <= y1 or y1 + h1 <= y0
    for e in edges:                      # from the source's bottom side to the target's top
        sx, sy, sw, sh = nodes[e["source"]]["rect"]
        tx, ty, tw, _ = nodes[e["target"]]["rect"]
        start = [float(v) for v in e["d"].split()[1].split(",")]
        tip = [float(v) for v in e["head"].split()[-1].split(",")]
        assert sx < start[0] < sx + sw and start[1] == pytest.approx(sy + sh, abs=0.1)
        assert tx < tip[0] < tx + tw and tip[1] == pytest.approx(ty, abs=0.1)


def test_two_uses_of_one_input_are_two_arrows_into_distinct_ports(tmp_path):
    x = engine.randn(3, requires_grad=True)
    engine.draw_graph((x * x).sum(), tmp_path / "sq.svg", png=False)
    nodes, edges = parse(tmp_path / "sq.svg")
    into_mul = [e for e in edges if nodes[e["target"]]["lines"][0] == "Mul"]
    assert sorted(e["input"] for e in into_mul) == ["0", "1"]
    assert len({e["head"] for e in into_mul}) == 2


def test_a_long_chain_is_drawn_without_recursion(tmp_path):
    x = engine.randn(2, requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    engine.draw_graph(y.sum(), tmp_path / "chain.svg", png=False)
    nodes, edges = parse(tmp_path / "chain.svg")
    assert len(nodes) == 3002 and len(edges) == 3001


# ----------------------------------------------------------------------------- files
def test_png_is_written_beside_the_svg_with_the_same_picture_size(tmp_path):
    mpl_image = pytest.importorskip("matplotlib.image")
    _, loss = mlp_loss()
    written = engine.draw_graph(loss, tmp_path / "graph.svg")
    assert written == [tmp_path / "graph.svg", tmp_path / "graph.png"]
    root = ET.parse(tmp_path / "graph.svg").getroot()
    pixels = mpl_image.imread(tmp_path / "graph.png")
    assert pixels.shape[:2] == (round(float(root.get("height"))),
                                round(float(root.get("width"))))
    assert pixels[..., :3].min() < 0.5                       # something is drawn


def test_without_matplotlib_only_the_svg_is_written(tmp_path, monkeypatch):
    _, loss = mlp_loss()
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import matplotlib fails
    assert engine.draw_graph(loss, tmp_path / "g") == [tmp_path / "g.svg"]
    assert not (tmp_path / "g.png").exists()
    with pytest.raises(ImportError, match="draw_graph: png=True needs matplotlib"):
        engine.draw_graph(loss, tmp_path / "g", png=True)


def test_bad_input_is_reported(tmp_path):
    with pytest.raises(ValueError, match=r"draw_graph: the tensor of shape \(2, 3\) does "
                                         "not require grad"):
        engine.draw_graph(engine.zeros(2, 3), tmp_path / "g.svg")
    with pytest.raises(TypeError, match="draw_graph: expected a Tensor, got ndarray"):
        engine.draw_graph(np.zeros(3), tmp_path / "g.svg")
    x = engine.randn(3, requires_grad=True)
    with pytest.raises(TypeError, match="params must map names to tensors, got str for 'w'"):
        engine.draw_graph(x.sum(), tmp_path / "g.svg", params={"w": "x"})


def test_a_leaf_alone_is_one_box(tmp_path):
    w = engine.randn(2, 5, requires_grad=True)
    engine.draw_graph(w, tmp_path / "w.svg", params=[("w", w)], png=False)
    nodes, edges = parse(tmp_path / "w.svg")
    assert [n["lines"] for n in nodes.values()] == [["w", "(2, 5) float32"]] and not edges


# ----------------------------------------------------------------------------- formulas
class PlusOne(Function):
    """y = ``x`` + 1 (as :func:`engine.add`
    with a constant);  gx = gy

    Not shown: only the first paragraph is the formula.
    """

    @staticmethod
    def forward(ctx, x):
        return x + 1.0

    @staticmethod
    def backward(ctx, gy):
        return gy


def test_formula_is_the_docstring_first_paragraph_without_markup(tmp_path):
    assert formula(nn.functional.Linear) == (
        "y = x Wᵀ + b  over the last axis of x (any leading axes, flattened to M rows)")
    assert formula(PlusOne) == "y = x + 1 (as add with a constant);  gx = gy"
    x = engine.randn(3, requires_grad=True)
    engine.draw_graph(PlusOne.apply(x), tmp_path / "custom.svg", png=False)
    nodes, _ = parse(tmp_path / "custom.svg")
    mine = next(n for n in nodes.values() if n["kind"] == "root")
    assert mine["lines"] == ["PlusOne", "(3,) float32", "y = x + 1 (as add with a constant)",
                             "gx = gy"]


def test_a_fused_op_shows_its_formula():
    node = engine.softmax(engine.randn(2, 3, requires_grad=True))._node
    assert node.impl is not reference                  # the fused kernel ran
    assert formula(type(node)).startswith("yᵢ = exp(xᵢ - m) / Σⱼ exp(xⱼ - m)")
    assert formula(LayerNorm).startswith("y = x̂ ⊙ γ + β")


def test_graph_modules_import_nothing_from_the_layers_packages():
    forbidden = {"nn", "optim", "losses", "data"}
    for name in ("graph_view", "graph_layout", "graph_render"):
        tree = ast.parse((Path(engine.__file__).parent / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not roots & forbidden, (name, roots)
