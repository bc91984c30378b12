"""The operators' short path (``function.apply_pair``): for every mix of inputs it gives
what ``Function.apply`` gives (values, dtypes, node, edges, needs_input_grad, gradients,
errors), takes the short path only for Tensors of NumPy arrays and Python numbers, and
hands everything else to ``apply``."""

import operator
import sys
from pathlib import Path

import numpy as np
import pytest

import engine
import nn
from engine import Function, Tensor
from engine.ops.elementwise import Add, Div, Mul, Sub

OPS = [(operator.add, Add), (operator.sub, Sub), (operator.mul, Mul),
       (operator.truediv, Div)]


def _leaf(values, requires_grad=True, dtype=np.float32):
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=requires_grad)


def _operands():
    """(a, b) pairs as the operators meet them: Tensors with and without grad, leaves and
    non-leaves, a Parameter, Python numbers on either side, broadcasting."""
    x = _leaf([[1.5, -2.0, 3.0]])
    h = x * 1.0                                          # a non-leaf
    c = _leaf([0.5, 4.0, -1.0], requires_grad=False)
    p = nn.Parameter(_leaf([[2.0], [3.0]]))
    return [(x, c), (c, x), (h, x), (x, p), (c, c), (x, 2.5), (3, x), (h, -1),
            (2.0, p)]


def _edge_summary(node):
    return tuple(None if e is None else (type(e[0]), e[1], e[2], e[3]) for e in node.edges)


@pytest.mark.parametrize("op, cls", OPS)
def test_operators_record_what_apply_records(op, cls):
    for a, b in _operands():
        ours = op(a, b)
        ref = cls.apply(a, b)
        assert type(ours) is Tensor
        np.testing.assert_array_equal(ours.numpy(), ref.numpy())
        assert ours.dtype == ref.dtype == np.float32
        assert ours.requires_grad == ref.requires_grad
        if ref.grad_fn is None:
            assert ours.grad_fn is None
            continue
        node = ours.grad_fn
        assert type(node) is cls and type(node.edges) is tuple
        assert _edge_summary(node) == _edge_summary(ref.grad_fn)
        assert [e[0] for e in node.edges if e] == [e[0] for e in ref.grad_fn.edges if e]
        assert node.needs_input_grad == ref.grad_fn.needs_input_grad
        assert type(node.needs_input_grad) is tuple


@pytest.mark.parametrize("op, cls", OPS)
def test_gradients_through_the_short_path_equal_apply(op, cls):
    rng = np.random.default_rng(0)
    for a, b in _operands():
        leaves = [t for t in (a, b) if isinstance(t, Tensor) and t.requires_grad]
        if not leaves:
            continue
        g = rng.standard_normal(op(a, b).shape).astype(np.float32)
        grads = []
        for fn in (op, cls.apply):
            found = engine.grad([fn(a, b)], leaves, [Tensor(g)], retain_graph=True)
            grads.append([t.numpy() for t in found])
        for ours, ref in zip(*grads):
            np.testing.assert_array_equal(ours, ref)


def test_short_path_skips_apply_only_for_plain_inputs(monkeypatch):
    """Function.apply is not called for floating Tensors of NumPy arrays and Python numbers;
    NumPy scalars, bools and arrays go through it, and a list is refused (as PyTorch does)."""
    calls = []
    real = Function.apply.__func__

    def counting(cls, *args, **params):
        calls.append(cls.__name__)
        return real(cls, *args, **params)

    monkeypatch.setattr(Function, "apply", classmethod(counting))
    x = _leaf([1.0, 2.0])
    y = x + x
    y = 2.0 * (y - 1) / x
    assert calls == []
    for other in (np.float64(2.0), True, np.ones(2, np.float32)):
        out = x * other
        np.testing.assert_array_equal(out.numpy(), x.numpy() * other)
    assert calls == ["Mul"] * 3
    with pytest.raises(TypeError, match="got list"):
        x * [1.0, 2.0]
    assert (x * np.float64(2.0)).dtype == np.float32


def test_python_scalars_keep_float32_and_no_grad_records_nothing():
    x = _leaf([1.0, 2.0])
    assert (x * 0.1).dtype == (0.1 * x).dtype == (x / 3).dtype == np.float32
    with engine.no_grad():
        y = x + x
    assert y.grad_fn is None and not y.requires_grad
    assert (x + 1).requires_grad and (x + 1).grad_fn is not None


def test_errors_and_anomaly_checks_as_in_apply():
    x, c = _leaf([1.0, 2.0, 3.0]), _leaf([1.0, 2.0], requires_grad=False)
    with pytest.raises(ValueError, match=r"add: shapes \(3,\) and \(2,\) cannot be broadcast"):
        x + c
    with pytest.raises(ValueError, match=r"mul: shapes \(2,\) and \(3,\)"):
        c * x
    zero = _leaf([0.0, 1.0, 2.0], requires_grad=False)
    with engine.detect_anomaly(), np.errstate(all="ignore"):
        with pytest.raises(FloatingPointError, match="Div forward produced inf"):
            x / zero


def test_device_arrays_go_through_apply(monkeypatch):
    """A CuPy array (a fake CuPy here) beside a NumPy one: apply's device error."""
    sys.path.insert(0, str(Path(__file__).parents[1]))
    import fake_cupy

    fake_cupy.install(monkeypatch)
    x = _leaf([1.0, 2.0])
    d = x.to("cuda")
    assert (d + d).device.startswith("cuda") and (d * 2.0).device.startswith("cuda")
    with pytest.raises(RuntimeError, match="Add: expected all tensors on one device"):
        x + d
