"""Helpers of the fused-kernel tests: run an op with the fused kernels on and off (same
seed, random upstream gradients) and compare; drawn matrices with extreme values and
non-contiguous layouts."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import engine
from engine import Tensor
from engine import testing as et


F32_EPS = float(np.finfo(np.float32).eps)


def leaf(a, device="cpu"):
    """A leaf Tensor around ``a`` itself (keeps a non-contiguous layout)."""
    t = Tensor._make(a, None, 0) if device == "cpu" else Tensor(a, device=device)
    return t.requires_grad_()


def leaves(arrays, device="cpu"):
    """:func:`leaf` of each array."""
    return [leaf(a, device) for a in arrays]


def run(fn, arrays, fused_on, seed=0, device="cpu", upstream=None):
    """Outputs and input gradients of ``fn`` (random upstream gradient; the engine's
    generator reseeded, so both paths draw the same dropout masks)."""
    engine.manual_seed(seed)
    with engine.use_fused(fused_on):
        ins = leaves(arrays, device)
        out = fn(*ins)
        outs = out if isinstance(out, tuple) else (out,)
        rng = np.random.default_rng(seed)
        grads = upstream or [Tensor(rng.standard_normal(o.shape).astype(o.dtype),
                                    device=device) for o in outs]
        engine.backward(list(outs), grads)
    return ([o.numpy() for o in outs],
            [None if t.grad is None else t.grad.numpy() for t in ins], outs)


def assert_fused_matches_reference(fn, arrays, rtol, atol, device="cpu", seed=0):
    before = [a.copy() for a in arrays]
    out_f, g_f, outs = run(fn, arrays, True, seed, device)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b, err_msg="fused op modified its input")
    out_r, g_r, _ = run(fn, arrays, False, seed, device)
    for a, b in zip(out_f, out_r):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg="forward")
    for a, b in zip(g_f, g_r):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg="backward")
    return outs


def assert_recurrence_kernels_equal_loop(monkeypatch, module, run_op, split):
    """The recurrence of ``module`` (cpu_rnn or cpu_gru) as Numba kernels, its batch in
    two ranges of rows on the pool when ``split``, against its Python step loop (no BLAS
    handed to kernels): ``run_op()`` gives the same arrays bit for bit."""
    from engine import threads
    from engine.kernels import cpu_rnn

    calls = []
    for name in ("_forward_steps", "_backward_steps"):
        real = getattr(module, name)
        monkeypatch.setattr(module, name,
                            lambda *a, _r=real, _n=name: (calls.append(_n), _r(*a))[1])
    engine.set_num_threads(2)
    monkeypatch.setattr(cpu_rnn, "SPLIT_ROWS", 4 if split else 100)
    monkeypatch.setattr(threads._Contention, "pause_until", 0.0)
    monkeypatch.setattr(threads, "MIN_JUDGED", 1.0)     # no pause from these tiny splits
    kernels = run_op()
    ranges = 2 if split else 1
    assert calls == ["_forward_steps"] * ranges + ["_backward_steps"] * ranges
    monkeypatch.setattr(module, "GEMM", {})             # no BLAS to call: the Python loop
    calls.clear()
    loop = run_op()
    assert calls == []
    for a, b in zip(kernels, loop):
        np.testing.assert_array_equal(a, b, strict=True)


def tolerances(dtype, magnitude=1.0):
    if dtype == np.float64:
        return 1e-9, 1e-11 * max(1.0, magnitude)
    return 2e-5, 8 * F32_EPS * max(1.0, magnitude)


@st.composite
def matrices(draw, min_rows=1, max_rows=5, extreme=True):
    """(rows, width) arrays: widths 1 to long, values normal / ±1e4 / a row at -200,
    contiguous or strided or transposed, float32 or float64."""
    n = draw(st.integers(min_rows, max_rows))
    c = draw(st.one_of(st.integers(1, 20), st.sampled_from([64, 257, 1030])))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    kind = draw(st.sampled_from(["normal", "large", "row-200"] if extreme else ["normal"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c))
    if kind == "large":
        x = rng.uniform(-1e4, 1e4, (n, c))
    elif kind == "row-200":
        x[rng.integers(n)] -= 200.0
    x = x.astype(dtype)
    layout = draw(st.sampled_from(["contiguous", "strided", "transposed"]))
    if layout != "contiguous":
        x = et.strided_copy(x, transposed=layout == "transposed")
    return x
