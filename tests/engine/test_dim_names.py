"""PyTorch's ``dim=`` and ``keepdim=`` on every reduction and shape op, as Tensor methods,
engine functions and ``nn.functional`` functions alike; NumPy's ``axis=``, ``keepdims=``
and ``ddof=`` are aliases, and naming an argument both ways is an error."""

from __future__ import annotations

import numpy as np
import pytest

import engine
import nn.functional as F

X = np.random.default_rng(0).standard_normal((3, 4, 5))

# name -> (fn(x, **kw), PyTorch's keywords, the same in NumPy's names)
WITH_KEEPDIM = ["sum", "mean", "var", "std", "amax", "amin", "logsumexp", "argmax",
                "argmin", "all", "any", "norm", "max", "min", "median"]
DIM_ONLY = {
    "cumsum": {},
    "softmax": {},
    "log_softmax": {},
    "sort": {},
    "argsort": {},
    "topk": {"k": 2},
    "squeeze": {},
    "unsqueeze": {},
    "split": {"split_size_or_sections": 2},
    "chunk": {"chunks": 2},
    "tensor_split": {"indices_or_sections": 2},
    "narrow": {"start": 1, "length": 2},
    "repeat_interleave": {"repeats": 2},
}


def outputs(out) -> list:
    if isinstance(out, (tuple, list)):
        return [t.numpy() for t in out]
    return [out.numpy()]


def call(how: str, name: str, x, **kw):
    if how == "method":
        return getattr(x, name)(**kw)
    if how == "engine":
        return getattr(engine, name)(x, **kw)
    return getattr(F, name)(x, **kw)


def forms(name):
    out = ["method", "engine"]
    if name in ("softmax", "log_softmax"):
        out.append("functional")
    return out


@pytest.mark.parametrize("name", WITH_KEEPDIM)
@pytest.mark.parametrize("how", ["method", "engine"])
def test_reductions_take_dim_keepdim_and_numpy_names(name, how):
    x = engine.tensor(X)
    torch_names = call(how, name, x, dim=1, keepdim=True)
    numpy_names = call(how, name, x, axis=1, keepdims=True)
    lead = (2,) if name == "norm" else ()            # norm's first argument is p
    positional = getattr(x, name)(*lead, 1, keepdim=True) if how == "method" else \
        getattr(engine, name)(x, *lead, 1, keepdim=True)
    for a, b, c in zip(outputs(torch_names), outputs(numpy_names), outputs(positional)):
        assert a.shape[1] == 1
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    with pytest.raises(TypeError, match=f"{name}: got both dim= and axis="):
        call(how, name, x, dim=1, axis=1)
    with pytest.raises(TypeError, match=f"{name}: got both keepdim= and keepdims="):
        call(how, name, x, dim=1, keepdim=False, keepdims=False)
    if how == "method":
        with pytest.raises(TypeError, match=f"{name}: got both dim= and axis="):
            getattr(x, name)(*lead, 1, axis=1)


@pytest.mark.parametrize("name", list(DIM_ONLY))
def test_dim_ops_take_dim_and_axis(name):
    x = engine.tensor(X)
    extra = DIM_ONLY[name]
    for how in forms(name):
        a = call(how, name, x, dim=-1, **extra)
        b = call(how, name, x, axis=-1, **extra)
        for u, v in zip(outputs(a), outputs(b)):
            np.testing.assert_array_equal(u, v)
        with pytest.raises(TypeError, match=f"{name}: got both dim= and axis="):
            call(how, name, x, dim=-1, axis=-1, **extra)


@pytest.mark.parametrize("name", ["cat", "stack"])
def test_joins_take_dim_and_axis(name):
    xs = [engine.tensor(X), engine.tensor(X)]
    fn = getattr(engine, name)
    np.testing.assert_array_equal(fn(xs, dim=2).numpy(), fn(xs, axis=2).numpy())
    np.testing.assert_array_equal(fn(xs, 2).numpy(), fn(xs, axis=2).numpy())
    with pytest.raises(TypeError, match=f"{name}: got both dim= and axis="):
        fn(xs, dim=1, axis=1)
    assert engine.concatenate is engine.cat and engine.concat is engine.cat


def test_var_correction_unbiased_and_ddof():
    x = engine.tensor(X)
    want_biased = X.var(axis=1)
    for got in (x.var(1, unbiased=False), x.var(1, correction=0), x.var(axis=1, ddof=0),
                engine.var(x, dim=1, correction=0)):
        np.testing.assert_allclose(got.numpy(), want_biased, rtol=1e-12)
    for got in (x.var(1), x.var(1, True), x.var(dim=1, ddof=1)):
        np.testing.assert_allclose(got.numpy(), X.var(axis=1, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(x.var(False).numpy(), X.var(), rtol=1e-12)
    np.testing.assert_allclose(x.std(0, correction=2).numpy(), X.std(axis=0, ddof=2),
                               rtol=1e-12)
    with pytest.raises(TypeError, match="var: got both correction= and ddof="):
        x.var(correction=1, ddof=1)
    with pytest.raises(TypeError, match="var: pass either unbiased= or correction="):
        x.var(unbiased=True, correction=0)


def test_functional_softmax_axis_alias():
    x = engine.tensor(X)
    np.testing.assert_array_equal(F.softmax(x, axis=0).numpy(), F.softmax(x, dim=0).numpy())
    np.testing.assert_array_equal(F.log_softmax(x, axis=2).numpy(),
                                  F.log_softmax(x, dim=2).numpy())
