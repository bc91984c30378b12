"""The GRU as one op per layer and direction (engine.ops.gru): float64 gradient checks of
the op, the op against its literal twin, where it is taken, its step kernels against
NumPy and on a fake device."""

import sys
from pathlib import Path

import numpy as np
import pytest

import engine
import nn
from engine.kernels import cpu_gru, cpu_rnn, cuda_rnn
from engine.ops.gru import gru_sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from fused_paths import assert_recurrence_kernels_equal_loop, leaves, run  # noqa: E402


def _arrays(T, B, n_in, H, seed, dtype=np.float64, bias=True, scale=1.0):
    """x, h0, W_ih, W_hh[, b_ih, b_hh] drawn from N(0, scale²)."""
    rng = np.random.default_rng(seed)
    shapes = [(T, B, n_in), (B, H), (3 * H, n_in), (3 * H, H)]
    shapes += [(3 * H,), (3 * H,)] if bias else []
    return [(scale * rng.standard_normal(s)).astype(dtype) for s in shapes]


def _call(reverse):
    def fn(x, h0, W_ih, W_hh, b_ih=None, b_hh=None):
        return gru_sequence(x, h0, W_ih, W_hh, b_ih, b_hh, reverse=reverse)
    return fn


def _run(arrays, fused, reverse, seed=0):
    """Outputs and every input's gradient, random upstream gradients on both outputs."""
    outs, grads, tensors = run(_call(reverse), [a.copy() for a in arrays], fused, seed)
    assert type(tensors[0].grad_fn).__name__ == ("GRUSequence" if fused else "Stack")
    return outs + grads


@pytest.mark.parametrize("T", [1, 3, 6])
@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck_sequence_op(T, reverse):
    xs = leaves(_arrays(T, 2, 3, 2, seed=T))
    with engine.use_fused(True):
        assert type(_call(reverse)(*xs)[0].grad_fn).__name__ == "GRUSequence"
        engine.gradcheck(_call(reverse), xs)
        engine.gradcheck(lambda *a: _call(reverse)(*a)[1], xs[:4])      # h_n, no bias


def test_two_layer_bidirectional_gru_is_one_op_per_layer_and_direction():
    m = nn.GRU(3, 2, num_layers=2, bidirectional=True).double()
    x, h0 = leaves([np.random.default_rng(2).standard_normal(s) for s in [(4, 2, 3),
                                                                            (4, 2, 2)]])
    with engine.use_fused(True):
        out, h = m(x, h0)
        nodes, stack = {}, [out.grad_fn]
        while stack:
            node = stack.pop()
            nodes[id(node)] = type(node).__name__
            stack += [e[0] for e in getattr(node, "edges", ())
                      if e is not None and id(e[0]) not in nodes]
        assert list(nodes.values()).count("GRUSequence") == 4
        engine.gradcheck(lambda x, h0: m(x, h0), [x, h0], params=m)
    with pytest.raises(RuntimeError, match="GRUSequence"):
        engine.grad(out.sum(), [x], create_graph=True)


@pytest.mark.parametrize("T,B,n_in,H", [(1, 1, 1, 1), (7, 3, 5, 4), (12, 2, 3, 8)])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_equals_literal_float64(T, B, n_in, H, reverse, bias):
    arrays = _arrays(T, B, n_in, H, seed=T + H, bias=bias)
    for a, b in zip(_run(arrays, True, reverse), _run(arrays, False, reverse)):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_fused_equals_literal_float32_batch_first_view_and_parallel_rows(scale):
    H = 64
    B = cpu_rnn.PARALLEL_MIN // (3 * H) + 1
    arrays = _arrays(3, B, 2, H, seed=5, dtype=np.float32, scale=scale)
    arrays[0] = np.ascontiguousarray(arrays[0].swapaxes(0, 1)).swapaxes(0, 1)
    before = [a.copy() for a in arrays]
    fused, literal = _run(arrays, True, True), _run(arrays, False, True)
    for i, (a, b) in enumerate(zip(fused, literal)):
        assert a.dtype == np.float32 and np.isfinite(a).all()
        # gradients through saturated gates (r(1 - r) with r near 1) carry float32's
        # rounding of r at full relative size: compared relative to the array's largest
        tol = 1e-4 if i < 2 else 2e-3
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


def _numpy_step(xa, ha, b_hh, h, gh):
    """The GRU step and its backward in NumPy (float64), gates r, z, n."""
    H = h.shape[1]
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))
    hb = ha.astype(np.float64) + b_hh
    r = sig(xa[:, :H] + hb[:, :H])
    z = sig(xa[:, H:2 * H] + hb[:, H:2 * H])
    hn = hb[:, 2 * H:]
    n = np.tanh(xa[:, 2 * H:] + r * hn)
    gn = gh * (1 - z) * (1 - n * n)
    gr = gn * hn * r * (1 - r)
    gz = gh * (h - n) * z * (1 - z)
    return [np.concatenate([r, z, n], 1), hn, (1 - z) * n + z * h,
            np.concatenate([gr, gz, gn], 1), np.concatenate([gr, gz, gn * r], 1), gh * z]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("B,H,scale", [(1, 1, 1.0), (3, 5, 1.0), (2, 7, 40.0),
                                       (cpu_rnn.PARALLEL_MIN // 192 + 3, 64, 2.0)])
def test_step_kernels_match_numpy(dtype, B, H, scale):
    rng = np.random.default_rng(B + H)
    draw = lambda *s: (scale * rng.standard_normal(s)).astype(dtype)
    xa, ha, b_hh, h, gh = draw(B, 3 * H), draw(B, 3 * H), draw(3 * H), draw(B, H), draw(B, H)
    want = _numpy_step(xa, ha, b_hh, h, gh)
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-6)
    for module in (cpu_gru, cuda_rnn):
        a = xa.copy()
        hn, h_new, gh_direct = (np.empty_like(h) for _ in range(3))
        module.gru_cell_forward(np, a, ha, b_hh, h, hn, h_new)
        gxa, gha = np.empty_like(a), np.empty_like(a)
        module.gru_cell_backward(np, gh, a, hn, h, gxa, gha, gh_direct)
        got = [a, hn, h_new, gxa, gha, gh_direct]
        for name, x, y in zip(["act", "hn", "h'", "gxa", "gha", "gh z"], got, want):
            assert x.dtype == dtype
            np.testing.assert_allclose(x, y, err_msg=f"{module.__name__} {name}",
                                       **{k: v * max(1.0, scale) for k, v in tol.items()})


def test_fused_gru_on_a_fake_device_matches_cpu(monkeypatch):
    sys.path.insert(0, str(Path(__file__).parents[1]))
    import fake_cupy

    fake_cupy.install(monkeypatch)
    results = []
    for device in ("cpu", "cuda"):
        engine.manual_seed(0)
        m = nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
        m.to(device)
        rng = np.random.default_rng(1)
        x = engine.tensor(rng.standard_normal((2, 5, 3)), device=device, requires_grad=True)
        h0 = engine.tensor(rng.standard_normal((4, 2, 4)), device=device, requires_grad=True)
        with engine.use_fused(True):
            out, h = m(x, h0)
        engine.backward([out, h], [engine.tensor(rng.standard_normal(t.shape), device=device)
                                   for t in (out, h)])
        results.append([out, h, x.grad, h0.grad] + [p.grad for p in m.parameters()])
    for a, b in zip(*results):
        assert fake_cupy.is_fake(b.data)
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_whole_recurrence_kernels_equal_the_python_step_loop(monkeypatch, restore_threads,
                                                              dtype, reverse, split, bias):
    """As for the LSTM: the step loops as Numba kernels calling BLAS, over ranges of the
    batch's rows when ``split``, give the Python loop's outputs and gradients bit for
    bit."""
    arrays = _arrays(5, 12, 3, 4, seed=12, dtype=dtype, bias=bias)
    assert_recurrence_kernels_equal_loop(monkeypatch, cpu_gru,
                                         lambda: _run(arrays, True, reverse), split)
