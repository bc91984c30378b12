"""What a graph keeps once its backward ran: nothing but its structure. Holding the losses of
a training run (to plot them, say) must not hold each step's dropout masks, targets or
index arrays."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine
import losses
import nn
import optim
from engine.function import AccumulateGrad
from engine.tensor import Tensor

sys.path.insert(0, str(Path(__file__).parent))
from op_table import OPS  # noqa: E402
from test_ops import as_tuple, backward_random, to_tensors  # noqa: E402


def _nodes(root: Tensor):
    """Every Function node of the graph that produced ``root``."""
    seen, stack = set(), [root._node]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen or type(node) is AccumulateGrad:
            continue
        seen.add(id(node))
        yield node
        stack.extend(edge[0] for edge in node.edges if edge is not None)


def _arrays_in(value):
    if isinstance(value, (np.ndarray, Tensor)):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _arrays_in(v)


def _held_arrays(root: Tensor) -> dict:
    """(op, attribute) -> bytes of the arrays the graph's nodes still hold."""
    held = {}
    for node in _nodes(root):
        for name, value in vars(node).items():
            if name == "edges":
                continue
            for a in _arrays_in(value):
                key = (type(node).__name__, name)
                held[key] = held.get(key, 0) + a.data.nbytes if isinstance(a, Tensor) \
                    else held.get(key, 0) + a.nbytes
    return held


class _Everything(nn.Module):
    """Embedding, attention with dropout, dropout, layer norm, conv and max pooling,
    fancy indexing: the ops that keep arrays for their backward."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3, batch_first=True)
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(8 + 2 * 2 * 2, 5)

    def forward(self, tokens, rows):
        h = self.layer(self.emb(tokens))                           # (B, T, 8)
        img = self.pool(self.conv(h[:, None, :, :4]))               # (B, 2, 2, 2)
        feats = engine.concatenate([h[:, rows].mean(axis=1), img.reshape(h.shape[0], -1)],
                                   axis=1)
        return self.head(feats)


def _losses_of(model, rng):
    tokens = engine.Tensor(rng.integers(0, 20, (3, 4)))
    logits = model(tokens, np.array([0, 2, 2]))
    ce = losses.cross_entropy(logits, rng.integers(0, 5, 3))
    bce = losses.binary_cross_entropy(logits.sigmoid(), rng.uniform(size=(3, 5)),
                                      weight=rng.uniform(size=5))
    return ce + bce


def test_a_graph_holds_no_arrays_after_backward():
    engine.manual_seed(0)
    model = _Everything()
    loss = _losses_of(model, np.random.default_rng(0))
    before = _held_arrays(loss)
    assert ("Attention", "drop") in before and ("CrossEntropy", "target") in before
    loss.backward()
    assert _held_arrays(loss) == {}
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()


def test_retain_graph_keeps_what_a_second_backward_needs():
    engine.manual_seed(0)
    model = _Everything()
    loss = _losses_of(model, np.random.default_rng(1))
    loss.backward(retain_graph=True)
    first = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    loss.backward()
    for g, p in zip(first, model.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-6, atol=1e-7)
    assert _held_arrays(loss) == {}


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
@settings(max_examples=5)
@given(data=st.data())
def test_no_op_of_the_table_holds_arrays_after_backward(op, data):
    args, kw = op.case(data)
    outs = [o for o in as_tuple(op.fn(*to_tensors(args), **kw)) if o.requires_grad]
    backward_random(outs)
    for out in outs:
        assert _held_arrays(out) == {}


def test_pooling_conv_lstm_and_index_add_hold_no_arrays_after_backward():
    rng = np.random.default_rng(2)
    x = engine.Tensor(rng.standard_normal((2, 3, 5, 5)).astype(np.float32), requires_grad=True)
    pooled = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)(
        nn.Conv2d(3, 4, 3)(x))
    seq, _ = nn.LSTM(4, 3, batch_first=True)(pooled.reshape(2, 4, -1).swapaxes(1, 2))
    spread = engine.index_add(seq.reshape(-1), np.array([0, 1, 1, 3] * 6), (5,))
    loss = spread.sum() + nn.MaxPool2d(2)(x).sum()
    assert ("AvgPool2dFunction", "divisor") in _held_arrays(loss)
    loss.backward()
    assert _held_arrays(loss) == {}


def test_a_graph_that_keeps_nothing_may_run_backward_again():
    x = engine.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = (-x.reshape(3, 2) + 1.0).sum()             # reshape, neg, add, sum save nothing
    y.backward()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), -2.0))


def test_holding_every_loss_of_a_training_run_stays_small():
    """A run whose losses are all kept: what stays per step is the graph's structure, a
    small fraction of one attention dropout mask (4 × 4 × 64 × 64 floats, 256 KiB)."""
    engine.manual_seed(0)
    batch, length, width, heads, vocab = 4, 64, 16, 4, 30
    emb = nn.Embedding(vocab, width)
    layer = nn.TransformerEncoderLayer(width, heads, 32, dropout=0.1, batch_first=True)
    head = nn.Linear(width, vocab)
    params = list(emb.parameters()) + list(layer.parameters()) + list(head.parameters())
    opt = optim.Adam(params, lr=1e-3)
    rng = np.random.default_rng(0)
    kept = []

    def step():
        x = engine.Tensor(rng.integers(0, vocab, (batch, length)))
        out = head(layer(emb(x))).reshape(batch * length, vocab)
        loss = losses.cross_entropy(out, rng.integers(0, vocab, batch * length))
        opt.zero_grad()
        loss.backward()
        opt.step()
        kept.append(loss)

    step()                                   # the optimizer's state, compiled kernels
    gc.collect()
    steps = 20
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(steps):
            step()
        gc.collect()
        per_step = (tracemalloc.get_traced_memory()[0] - base) / steps
    finally:
        tracemalloc.stop()
    mask = batch * heads * length * length * 4
    assert per_step < mask / 8, f"{per_step / 1024:.1f} KiB kept per step"
