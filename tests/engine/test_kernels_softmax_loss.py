"""Fused softmax, log-softmax and cross-entropy equal their reference formulas (forward
and backward with random upstream gradients) on drawn shapes, extreme values, ignored rows
and the unbatched and spatial forms."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine

sys.path.insert(0, str(Path(__file__).parent))
from fused_paths import (  # noqa: E402
    assert_fused_matches_reference, leaf, matrices, tolerances,
)


# ---------------------------------------------------------------- fused == reference
@settings(deadline=None)
@given(x=matrices(), log=st.booleans(), axis=st.sampled_from([-1, 0]))
def test_softmax_fused_matches_reference(x, log, axis):
    fn = (lambda t: engine.log_softmax(t, axis)) if log else (lambda t: engine.softmax(t, axis))
    rtol, atol = tolerances(x.dtype, float(np.abs(x).max()) if log else 1.0)
    outs = assert_fused_matches_reference(fn, [x], rtol, atol)
    assert outs[0].dtype == x.dtype


@settings(deadline=None)
@given(x=matrices(), data=st.data())
def test_cross_entropy_fused_matches_reference(x, data):
    n, c = x.shape
    target = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    ignore = data.draw(st.sampled_from([-100, 0]))
    if data.draw(st.booleans()):
        target[0] = ignore
    smoothing = data.draw(st.sampled_from([0.0, 0.1, 1.0]))
    reduction = data.draw(st.sampled_from(["mean", "sum", "none"]))

    def fn(t):
        return engine.cross_entropy(t, target, ignore_index=ignore,
                                    label_smoothing=smoothing, reduction=reduction)

    rtol, atol = tolerances(x.dtype, float(np.abs(x).max()))
    outs = assert_fused_matches_reference(fn, [x], rtol, atol * n)
    assert outs[0].dtype == x.dtype


# ---------------------------------------------------------------- extreme values
def test_softmax_extremes_ninf_masks_and_huge_logits():
    x = np.array([[1e4, -1e4, 0.0, 1e4],
                  [-np.inf, 0.0, -np.inf, 1.0],
                  [-200.0, -201.0, -199.5, -200.0],
                  [-3e38, 3e38, 0.0, 1.0]], dtype=np.float32)
    for fn in (engine.softmax, engine.log_softmax):
        y = fn(leaf(x))
        with engine.use_fused(False), np.errstate(over="ignore"):
            r = fn(leaf(x))
        np.testing.assert_allclose(y.data, r.data, rtol=1e-6, atol=1e-6)
    p = engine.softmax(leaf(x)).data
    assert p[1, 0] == 0 and p[1, 2] == 0 and np.isclose(p[1].sum(), 1)
    np.testing.assert_allclose(p[0], [0.5, 0, 0, 0.5])


def test_softmax_nan_and_all_ninf_rows_propagate_like_reference():
    x = np.array([[np.nan, 1.0, 2.0], [-np.inf] * 3, [0.0, 1.0, 2.0]])
    with np.errstate(invalid="ignore"):
        y = engine.softmax(leaf(x)).data
        with engine.use_fused(False):
            r = engine.softmax(leaf(x)).data
    np.testing.assert_array_equal(np.isnan(y), np.isnan(r))
    assert np.isnan(y[:2]).all() and np.isfinite(y[2]).all()


def test_cross_entropy_huge_logits_and_ignored_rows():
    x = np.array([[1e4, -1e4, 0.0], [-200.0, -200.0, -199.0], [5.0, 5.0, 5.0]])
    t = np.array([1, 2, -100])
    for ls in (0.0, 0.3):
        assert_fused_matches_reference(
            lambda a, ls=ls: engine.cross_entropy(a, t, label_smoothing=ls, reduction="none"),
            [x], rtol=1e-12, atol=1e-9)
    loss = engine.cross_entropy(leaf(x), t, reduction="none").data
    np.testing.assert_allclose(loss, [2e4, np.log(1 + 2 * np.exp(-1.0)), 0.0], rtol=1e-12)


def test_cross_entropy_all_ignored_gives_nan_loss_and_zero_grad():
    for on in (True, False):
        with engine.use_fused(on):
            x = leaf(np.ones((2, 3)))
            loss = engine.cross_entropy(x, np.array([-100, -100]))
            loss.backward()
        assert np.isnan(loss.item())
        np.testing.assert_array_equal(x.grad.data, 0)


def test_cross_entropy_unbatched_and_spatial_forms():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 3))                       # (N, C, d)
    t = np.array([[0, 3, -100], [2, 2, 1]])
    loss = engine.cross_entropy(leaf(x), t, reduction="none")
    flat = engine.cross_entropy(leaf(x.transpose(0, 2, 1).reshape(6, 4)), t.reshape(6),
                                reduction="none")
    assert loss.shape == (2, 3)
    np.testing.assert_allclose(loss.data.reshape(6), flat.data)
    one = engine.cross_entropy(leaf(x[0, :, 0]), np.array(2))
    assert one.shape == ()
    np.testing.assert_allclose(one.item(), -np.log(np.exp(x[0, 2, 0]) /
                                                   np.exp(x[0, :, 0]).sum()))
    engine.gradcheck(lambda a: engine.cross_entropy(a, t, label_smoothing=0.1), [x])


# ---------------------------------------------------------------- serial and parallel builds
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_serial_and_parallel_builds_agree(dtype, smoothing):
    """Small logits take the serial kernels, large ones the parallel: the same values, and
    the parallel path matches the reference formulas."""
    from engine.kernels import cpu

    rng = np.random.default_rng(0)
    n, c = 700, 100                                    # above the parallel threshold
    assert n * c >= cpu.CROSS_ENTROPY_PARALLEL_MIN
    x = (3 * rng.standard_normal((n, c))).astype(dtype)
    target = rng.integers(0, c, n)
    target[::7] = -100
    g = rng.standard_normal(n).astype(dtype)
    g[1::5] = 0.0
    outs = []
    for fwd, bwd in ((cpu._cross_entropy_fwd_serial, cpu._cross_entropy_bwd_serial),
                     (cpu._cross_entropy_fwd, cpu._cross_entropy_bwd)):
        loss, lse, gx = np.empty(n, dtype), np.empty(n, dtype), np.empty_like(x)
        fwd(x, target, -100, smoothing, loss, lse)
        bwd(x, lse, target, g, -100, smoothing, gx)
        outs.append((loss, lse, gx))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == dtype
    assert (outs[0][0][::7] == 0).all() and (outs[0][2][1::5] == 0).all()

    def fn(t):
        return engine.cross_entropy(t, target, ignore_index=-100, label_smoothing=smoothing,
                                    reduction="none")

    rtol, atol = tolerances(dtype, float(np.abs(x).max()))
    assert_fused_matches_reference(fn, [x], rtol, atol)


@pytest.mark.parametrize("rows, serial", [(128, True), (700, False)])
def test_cross_entropy_takes_the_build_its_logits_size_calls_for(monkeypatch, rows, serial):
    from engine.kernels import cpu

    calls = []
    for name in ("_cross_entropy_fwd", "_cross_entropy_bwd", "_cross_entropy_fwd_serial",
                 "_cross_entropy_bwd_serial"):
        real = getattr(cpu, name)
        monkeypatch.setattr(cpu, name, lambda *a, _r=real, _n=name: (calls.append(_n),
                                                                     _r(*a))[1])
    x = engine.tensor(np.random.default_rng(1).standard_normal((rows, 100)), requires_grad=True)
    engine.cross_entropy(x, np.arange(rows) % 100).backward()
    suffix = "_serial" if serial else ""
    assert calls == ["_cross_entropy_fwd" + suffix, "_cross_entropy_bwd" + suffix]
