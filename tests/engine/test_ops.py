"""Every op of the table through the same checks: forward vs NumPy, dtype and shape,
float32 preserved, inputs untouched, non-contiguous inputs, float64 gradcheck."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine
from engine import Tensor
from engine import testing as et

sys.path.insert(0, str(Path(__file__).parent))
from op_table import OPS  # noqa: E402

IDS = [op.name for op in OPS]


def to_tensors(args, dtype=np.float64, requires_grad=True):
    out = []
    for a in args:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            out.append(Tensor(a.astype(dtype), requires_grad=requires_grad))
        elif isinstance(a, np.ndarray):
            out.append(Tensor(a))
        else:
            out.append(a)
    return out


def as_tuple(y):
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def backward_random(outputs, seed=0):
    rng = np.random.default_rng(seed)
    outs = [o for o in outputs if o.requires_grad]
    grads = [Tensor(rng.standard_normal(o.shape).astype(o.dtype)) for o in outs]
    if outs:
        engine.backward(outs, grads)


@pytest.mark.parametrize("op", OPS, ids=IDS)
@settings(max_examples=20)
@given(data=st.data())
def test_forward_matches_numpy(op, data):
    args, kw = op.case(data)
    got = as_tuple(op.fn(*to_tensors(args, requires_grad=False), **kw))
    want = as_tuple(op.ref(*args, **kw))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        w = np.asarray(w)
        assert g.shape == w.shape, f"{op.name}: shape {g.shape} != {w.shape}"
        assert g.dtype == np.float64, f"{op.name}: dtype {g.dtype}"
        np.testing.assert_allclose(g.data, w, rtol=1e-10, atol=1e-12, err_msg=op.name)


@pytest.mark.parametrize("op", OPS, ids=IDS)
@settings(max_examples=15)
@given(data=st.data())
def test_float32_stays_float32(op, data):
    """float32 in: float32 out, float32 gradients, values close to the float64 reference."""
    args, kw = op.case(data)
    xs = to_tensors(args, dtype=np.float32)
    outs = as_tuple(op.fn(*xs, **kw))
    for o, w in zip(outs, as_tuple(op.ref(*args, **kw))):
        assert o.dtype == np.float32, f"{op.name}: output dtype {o.dtype}"
        np.testing.assert_allclose(o.data, np.asarray(w), rtol=op.rtol32, atol=op.atol32,
                                   err_msg=op.name)
    backward_random(outs)
    for x in xs:
        if isinstance(x, Tensor) and x.requires_grad and any(o.requires_grad for o in outs):
            assert x.grad is not None and x.grad.dtype == np.float32, op.name
            assert x.grad.shape == x.shape


@pytest.mark.parametrize("op", OPS, ids=IDS)
@settings(max_examples=15)
@given(data=st.data())
def test_inputs_not_modified(op, data):
    args, kw = op.case(data)
    before = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    xs = to_tensors(args)
    copies = [x.data.copy() if isinstance(x, Tensor) else x for x in xs]
    backward_random(as_tuple(op.fn(*xs, **kw)))
    for x, c in zip(xs, copies):
        if isinstance(x, Tensor):
            np.testing.assert_array_equal(x.data, c, err_msg=op.name)
    for a, b in zip(args, before):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=op.name)


@pytest.mark.parametrize("op", OPS, ids=IDS)
@settings(max_examples=15)
@given(data=st.data(), transposed=st.booleans())
def test_non_contiguous_inputs(op, data, transposed):
    """Strided and transposed layouts give the same values and gradients."""
    args, kw = op.case(data)
    strided = [et.strided_copy(np.ascontiguousarray(a), transposed)
               if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args]
    dense = [np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a for a in args]
    results = []
    for variant in (dense, strided):
        xs = to_tensors(variant)
        outs = as_tuple(op.fn(*xs, **kw))
        backward_random(outs, seed=1)
        results.append(([o.data for o in outs],
                        [x.grad.data if isinstance(x, Tensor) and x.grad is not None else None
                         for x in xs]))
    (out_a, g_a), (out_b, g_b) = results
    for a, b in zip(out_a, out_b):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=op.name)
    for a, b in zip(g_a, g_b):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=op.name)


@pytest.mark.parametrize("op", OPS, ids=IDS)
@settings(max_examples=50)
@given(data=st.data())
def test_gradcheck(op, data):
    """float64 analytic gradients equal central differences (random upstream gradient)."""
    args, kw = op.case(data)
    xs = to_tensors(args)
    if not any(isinstance(x, Tensor) and x.requires_grad and x.numel() for x in xs):
        return  # nothing differentiable drawn (e.g. only empty arrays)
    outs = as_tuple(op.fn(*xs, **kw))
    if not any(o.numel() for o in outs):
        return
    engine.gradcheck(lambda *t: op.fn(*t, **kw), xs, atol=op.grad_atol)
