"""Type promotion as PyTorch's: the dtype of every binary op for every pair of dtypes, with
numbers and 0-d tensors, against ``torch.result_type`` and torch's own results; gradients
come back in each input's dtype."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import engine

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32",
          "float64"]
PAIRS = list(itertools.product(DTYPES, DTYPES))


def values(dtype: str, shape=(2, 3), seed=0) -> np.ndarray:
    """Small positive values (valid for every op and dtype: no negative integer powers)."""
    rng = np.random.default_rng(seed)
    return rng.integers(1, 4, size=shape).astype(dtype)


def pair(a: np.ndarray, b: np.ndarray):
    return (engine.tensor(a), engine.tensor(b)), (torch.tensor(a), torch.tensor(b))


OPS = {
    "add": lambda lib, a, b: a + b,
    "sub": lambda lib, a, b: a - b,
    "mul": lambda lib, a, b: lib.mul(a, b),
    "div": lambda lib, a, b: a / b,
    "pow": lambda lib, a, b: a ** b,
    "maximum": lambda lib, a, b: lib.maximum(a, b),
    "where": lambda lib, a, b: lib.where(a > 1, a, b),
}


def expected_dtype(op: str, da: str, db: str) -> str:
    dtype = torch.result_type(torch.ones(1, dtype=getattr(torch, da)),
                              torch.ones(1, dtype=getattr(torch, db)))
    if op == "div" and not dtype.is_floating_point:
        dtype = torch.get_default_dtype()      # true division
    return str(dtype).replace("torch.", "")


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("da,db", PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_binary_ops_promote_as_pytorch(op, da, db):
    (a, b), (ta, tb) = pair(values(da), values(db, seed=1))
    fn = OPS[op]
    if op in ("sub", "pow") and da == db == "bool":
        with pytest.raises(RuntimeError, match=f"{op}: not supported on bool tensors"):
            fn(engine, a, b)
        with pytest.raises(RuntimeError):
            fn(torch, ta, tb)
        return
    out = fn(engine, a, b)
    assert str(out.dtype) == expected_dtype(op, da, db)
    try:
        want = fn(torch, ta, tb)
    except RuntimeError:
        return                     # torch lacks this kernel (bool pow, ...): dtype only
    assert str(out.dtype) == str(want.dtype).replace("torch.", "")
    rtol = 1e-3 if out.dtype == np.float16 else 1e-6
    np.testing.assert_allclose(out.numpy().astype(np.float64),
                               want.numpy().astype(np.float64), rtol=rtol)


@pytest.mark.parametrize("da,db", PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_matmul_promotes_as_result_type(da, db):
    """torch.matmul itself wants one dtype; here the operands are promoted first."""
    a, b = engine.tensor(values(da, (2, 3))), engine.tensor(values(db, (3, 2), seed=1))
    if da == db == "bool":
        return
    out = a @ b
    assert str(out.dtype) == expected_dtype("matmul", da, db)
    want = values(da, (2, 3)).astype(np.float64) @ values(db, (3, 2), seed=1).astype(
        np.float64)
    np.testing.assert_allclose(out.numpy().astype(np.float64), want, rtol=1e-3)


SCALARS = [2, 2.5, True, np.float64(2.5), np.int64(2), np.float32(0.5)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scalar", SCALARS, ids=[repr(s) for s in SCALARS])
def test_numbers_do_not_widen_tensors(dtype, scalar):
    """A Python or NumPy number changes the dtype only across categories (int tensor with a
    float: the default float dtype), on either side of the operator."""
    a = values(dtype)
    x, t = engine.tensor(a), torch.tensor(a)
    for fn in (lambda v, s: v * s, lambda v, s: s + v, lambda v, s: v / s):
        want = fn(t, scalar.item() if isinstance(scalar, np.generic) else scalar)
        got = fn(x, scalar)
        assert str(got.dtype) == str(want.dtype).replace("torch.", ""), (dtype, scalar)
        np.testing.assert_allclose(got.numpy().astype(np.float64),
                                   want.numpy().astype(np.float64), rtol=1e-3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zero_d", DTYPES)
def test_zero_dim_tensors_count_like_numbers(dtype, zero_d):
    x = engine.tensor(values(dtype)) + engine.tensor(np.array(1, dtype=zero_d))
    want = torch.tensor(values(dtype)) + torch.tensor(np.array(1, dtype=zero_d))
    assert str(x.dtype) == str(want.dtype).replace("torch.", "")


def test_result_type_matches_torch():
    for da, db in PAIRS:
        for shape_a, shape_b in [((2,), (2,)), ((), (2,)), ((2,), ())]:
            a = np.ones(shape_a, dtype=da)
            b = np.ones(shape_b, dtype=db)
            want = torch.result_type(torch.tensor(a), torch.tensor(b))
            got = engine.result_type(engine.tensor(a), engine.tensor(b))
            assert str(got) == str(want).replace("torch.", ""), (da, db, shape_a, shape_b)
    assert engine.result_type(engine.ones(2, dtype=engine.int64), 2.5) == engine.float32
    assert engine.promote_types(engine.int64, engine.float16) == engine.float16


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow", "maximum", "where",
                                "matmul"])
def test_float32_with_float64_gives_float64_and_each_gradient_its_own_dtype(op):
    rng = np.random.default_rng(0)
    a32 = rng.uniform(0.5, 2.0, (3, 3)).astype(np.float32)
    b64 = rng.uniform(0.5, 2.0, (3, 3))
    a, b = engine.tensor(a32, requires_grad=True), engine.tensor(b64, requires_grad=True)
    ta, tb = torch.tensor(a32, requires_grad=True), torch.tensor(b64, requires_grad=True)
    fn = (lambda lib, x, y: x @ y) if op == "matmul" else OPS[op]
    y = fn(engine, a, b)
    ty = fn(torch, ta.double(), tb) if op == "matmul" else fn(torch, ta, tb)
    assert y.dtype == np.float64 and ty.dtype == torch.float64
    g = rng.standard_normal((3, 3))
    y.backward(engine.tensor(g))
    ty.backward(torch.tensor(g))
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-12)


def test_float32_with_int_tensor_stays_float32_with_gradient():
    x = engine.tensor([1.5, 2.5], requires_grad=True)
    i = engine.tensor([1, 2])
    y = x * i + i
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0])


def test_integer_division_is_true_division():
    i, j = engine.tensor([1, 2, 7]), engine.tensor([2, 2, 2])
    assert (i / j).dtype == np.float32
    np.testing.assert_array_equal((i / j).numpy(), [0.5, 1.0, 3.5])
    assert (1 / j).dtype == np.float32 and engine.div(i, 2).dtype == np.float32
    engine.set_default_dtype(np.float64)
    assert (i / j).dtype == np.float64


def test_bool_arithmetic():
    t, f = engine.tensor([True, False]), engine.tensor([True, True])
    assert (t + f).dtype == np.bool_ and (t * f).dtype == np.bool_
    assert (t + 1).dtype == np.int64 and (t * 2.5).dtype == np.float32
    assert (t / f).dtype == np.float32
    np.testing.assert_array_equal((t + f).numpy(), [True, True])
    with pytest.raises(RuntimeError, match="sub: not supported on bool tensors"):
        engine.sub(t, f)
    with pytest.raises(RuntimeError, match="neg: not supported on bool tensors"):
        t.neg()
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    (x * t).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 0.0])


def test_unary_math_on_integers_gives_the_default_float():
    i = engine.tensor([1, 4])
    for name in ("exp", "log", "sqrt", "sin", "cos"):
        got = getattr(i, name)()
        want = getattr(torch.tensor([1, 4]), name)()
        assert got.dtype == np.float32 and want.dtype == torch.float32
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    assert i.abs().dtype == np.int64


def test_sum_of_integers_and_bools_is_int64():
    for dtype in ("bool", "uint8", "int32"):
        x = engine.tensor(values(dtype))
        assert x.sum().dtype == np.int64 and x.cumsum(0).dtype == np.int64
        assert str(torch.tensor(values(dtype)).sum().dtype) == "torch.int64"
