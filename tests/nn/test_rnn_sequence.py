"""The LSTM as one op per layer and direction (engine.ops.lstm): float64 gradient checks of
the op, the op against its literal twin, what it leaves untouched, where it is taken; the
step's kernels (Numba on the CPU, array code for CuPy) against each other and NumPy."""

import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

import engine
import nn
from engine import Tensor
from engine.kernels import cpu_rnn, cuda_rnn
from engine.ops.lstm import lstm_sequence, lstm_sequence_reference

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from fused_paths import assert_recurrence_kernels_equal_loop, leaves, run  # noqa: E402


def _arrays(T, B, n_in, H, seed, dtype=np.float64, bias=True, scale=1.0):
    """x, h0, c0, W_ih, W_hh[, b_ih, b_hh] drawn from N(0, scale²)."""
    rng = np.random.default_rng(seed)
    shapes = [(T, B, n_in), (B, H), (B, H), (4 * H, n_in), (4 * H, H)]
    shapes += [(4 * H,), (4 * H,)] if bias else []
    return [(scale * rng.standard_normal(s)).astype(dtype) for s in shapes]


def _call(reverse):
    def fn(x, h0, c0, W_ih, W_hh, b_ih=None, b_hh=None):
        return lstm_sequence(x, h0, c0, W_ih, W_hh, b_ih, b_hh, reverse=reverse)
    return fn


def _run(arrays, fused, reverse, seed=0):
    """Outputs and every input's gradient, random upstream gradients on all three."""
    outs, grads, tensors = run(_call(reverse), [a.copy() for a in arrays], fused, seed)
    assert type(tensors[0].grad_fn).__name__ == ("LSTMSequence" if fused else "Stack")
    return outs + grads


# ------------------------------------------------------------------ gradient checks
@pytest.mark.parametrize("T", [1, 3, 6])
@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck_sequence_op(T, reverse):
    xs = leaves(_arrays(T, 2, 3, 2, seed=T))
    with engine.use_fused(True):
        out, h, c = _call(reverse)(*xs)
        assert type(out.grad_fn).__name__ == "LSTMSequence"
        assert out.shape == (T, 2, 2) and h.shape == c.shape == (2, 2)
        engine.gradcheck(_call(reverse), xs)


def test_gradcheck_sequence_op_without_bias_and_unused_outputs():
    xs = leaves(_arrays(4, 3, 2, 3, seed=1, bias=False))
    with engine.use_fused(True):
        engine.gradcheck(_call(False), xs)
        engine.gradcheck(lambda *a: _call(True)(*a)[2], xs)              # c_n alone
        engine.gradcheck(lambda *a: _call(False)(*a)[0][1:], xs)         # part of output


def test_one_bias_alone_fused_and_literal():
    arrays = _arrays(3, 2, 2, 2, seed=9)[:6]                  # b_ih without b_hh
    xs = leaves(arrays)
    results = []
    for fused in (True, False):
        with engine.use_fused(fused):
            engine.gradcheck(_call(False), xs)
            results.append([o.numpy() for o in _call(False)(*xs)])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_gradcheck_two_layer_bidirectional_lstm_with_states_is_fused():
    m = nn.LSTM(3, 2, num_layers=2, bidirectional=True).double()
    x, h0, c0 = leaves(_arrays(5, 2, 3, 2, seed=2)[:1] + [
        np.random.default_rng(3).standard_normal((4, 2, 2)) for _ in range(2)])
    with engine.use_fused(True):
        out, (h, c) = m(x, (h0, c0))
        assert _count_nodes(out, "LSTMSequence") == 4          # one op per layer·direction
        engine.gradcheck(lambda x, h0, c0: (lambda o: (o[0],) + o[1])(m(x, (h0, c0))),
                         [x, h0, c0], params=m)


def _count_nodes(t, name):
    seen, stack, count = set(), [t.grad_fn], 0
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        count += type(node).__name__ == name
        stack += [e[0] for e in getattr(node, "edges", ()) if e is not None]
    return count


def test_sequence_op_is_first_order_only_and_literal_twin_is_not():
    xs = leaves(_arrays(2, 1, 2, 2, seed=4))
    with engine.use_fused(True):
        out, _, _ = _call(False)(*xs)
        with pytest.raises(RuntimeError, match="LSTMSequence"):
            engine.grad(out.sum(), [xs[0]], create_graph=True)
    with engine.use_fused(False):
        engine.gradgradcheck(lambda x, h0, W_hh: lstm_sequence_reference(
            x, h0, xs[2], xs[3], W_hh, xs[5], xs[6])[0], [xs[0], xs[1], xs[4]])


# ------------------------------------------------------------------ fused against literal
@pytest.mark.parametrize("T,B,n_in,H", [(1, 1, 1, 1), (7, 3, 5, 4), (12, 2, 3, 8)])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_equals_literal_float64(T, B, n_in, H, reverse, bias):
    arrays = _arrays(T, B, n_in, H, seed=T + H, bias=bias)
    for a, b in zip(_run(arrays, True, reverse), _run(arrays, False, reverse)):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_fused_equals_literal_float32_saturated_gates(scale):
    arrays = _arrays(9, 4, 6, 5, seed=5, dtype=np.float32, scale=scale)
    fused, literal = _run(arrays, True, True), _run(arrays, False, True)
    for a, b in zip(fused, literal):
        assert a.dtype == np.float32 and np.isfinite(a).all()
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * scale)


def test_inputs_and_upstream_gradients_are_left_untouched():
    arrays = _arrays(5, 3, 4, 3, seed=6)
    before = [a.copy() for a in arrays]
    xs = leaves(arrays)
    rng = np.random.default_rng(7)
    with engine.use_fused(True):
        outs = _call(False)(*xs)
    ups = [rng.standard_normal(o.shape) for o in outs]
    ups_before = [u.copy() for u in ups]
    engine.backward(list(outs), [Tensor._make(u, None, 0) for u in ups])
    for a, b in zip(arrays + ups, before + ups_before):
        np.testing.assert_array_equal(a, b)


def test_batch_first_input_view_and_long_batch_take_the_parallel_kernels():
    """A (B, T, I) input seen time-major is a non-contiguous view; B·4H ≥ the parallel
    threshold runs the row-parallel kernels."""
    H = 64
    B = cpu_rnn.PARALLEL_MIN // (4 * H) + 1
    arrays = _arrays(3, B, 2, H, seed=8, dtype=np.float32)
    arrays[0] = np.ascontiguousarray(arrays[0].swapaxes(0, 1)).swapaxes(0, 1)
    assert not arrays[0].flags.c_contiguous
    for a, b in zip(_run(arrays, True, False), _run(arrays, False, False)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)   # sums of 4H = 256 terms


# ------------------------------------------------------------------ the step's kernels
def _step_inputs(B, H, dtype, scale, seed):
    rng = np.random.default_rng(seed)
    draw = lambda *s: (scale * rng.standard_normal(s)).astype(dtype)
    return draw(B, 4 * H), draw(B, 4 * H), draw(B, H), draw(B, H), draw(B, H)


def _numpy_step(xa, ha, c, gh, gc):
    """The step and its backward in plain NumPy (float64), gates i, f, g, o."""
    H = c.shape[1]
    a = xa.astype(np.float64) + ha
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))
    i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), \
        sig(a[:, 3 * H:])
    c_new = f * c + i * g
    t = np.tanh(c_new)
    gc_hat = gc + gh * o * (1 - t * t)
    ga = np.concatenate([gc_hat * g * i * (1 - i), gc_hat * c * f * (1 - f),
                         gc_hat * i * (1 - g * g), gh * t * o * (1 - o)], axis=1)
    return [np.concatenate([i, f, g, o], axis=1), c_new, t, o * t, ga, gc_hat * f]


def _kernel_step(module, xa, ha, c, gh, gc):
    a = xa.copy()
    c_new, t, h_new, gc_prev = (np.empty_like(c) for _ in range(4))
    module.lstm_cell_forward(np, a, ha, c, c_new, t, h_new)
    ga = np.empty_like(a)
    module.lstm_cell_backward(np, gh, gc, a, c, t, ga, gc_prev)
    return [a, c_new, t, h_new, ga, gc_prev]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("B,H,scale", [(1, 1, 1.0), (3, 5, 1.0), (2, 7, 40.0),
                                       (cpu_rnn.PARALLEL_MIN // 256 + 3, 64, 2.0)])
def test_step_kernels_match_numpy(dtype, B, H, scale):
    xa, ha, c, gh, gc = _step_inputs(B, H, dtype, scale, seed=B + H)
    want = _numpy_step(xa, ha, c, gh, gc)
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-6)
    for module in (cpu_rnn, cuda_rnn):
        got = _kernel_step(module, xa, ha, c, gh, gc)
        for name, a, b in zip(["act", "c'", "tanh c'", "h'", "ga", "gc"], got, want):
            assert a.dtype == dtype and a.shape == b.shape
            np.testing.assert_allclose(a, b, err_msg=f"{module.__name__} {name}",
                                       **{k: v * max(1.0, scale) for k, v in tol.items()})


@njit(cache=False)
def _apply(f, x, y):
    for j in range(x.shape[0]):
        y[j] = f(x[j])


@njit(cache=False)
def _tanh(x):
    return cpu_rnn.vtanh(x)


@njit(cache=False)
def _sigmoid(x):
    return cpu_rnn.vsigmoid(x)


@pytest.mark.parametrize("dtype,max_ulp", [(np.float32, 2), (np.float64, 2)])
def test_vectorizing_tanh_and_sigmoid_are_within_a_few_ulp(dtype, max_ulp):
    x = np.concatenate([np.linspace(-25, 25, 40001), np.logspace(-30, 1.5, 2000),
                        -np.logspace(-30, 1.5, 2000), [0.625, -0.625, 0.62500006]])
    x = x.astype(dtype)
    y = np.empty_like(x)
    _apply(_tanh, x, y)
    ref = np.tanh(x.astype(np.float64))
    ulp = np.abs(y - ref) / np.spacing(np.abs(ref).astype(dtype)).astype(np.float64)
    assert ulp.max() <= max_ulp
    _apply(_sigmoid, x, y)
    ref = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    keep = ref > np.finfo(dtype).tiny                    # subnormal results: absolute error
    ulp = np.abs(y - ref)[keep] / np.spacing(ref[keep].astype(dtype)).astype(np.float64)
    assert ulp.max() <= max_ulp + 1
    special = np.array([np.inf, -np.inf, np.nan, 1e30, -1e30, 0.0], dtype=dtype)
    out = np.empty_like(special)
    _apply(_tanh, special, out)
    np.testing.assert_array_equal(out, [1, -1, np.nan, 1, -1, 0])
    _apply(_sigmoid, special, out)
    np.testing.assert_array_equal(out, [1, 0, np.nan, 1, 0, 0.5])


# ------------------------------------------------------------------ the whole recurrence
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("split", [False, True])
def test_whole_recurrence_kernels_equal_the_python_step_loop(monkeypatch, restore_threads,
                                                              dtype, reverse, split):
    """The forward and backward loops run as Numba kernels that call BLAS for each step's
    product, over ranges of the batch's rows on the pool when ``split``; outputs and every
    gradient equal the Python step loop's, bit for bit."""
    arrays = _arrays(5, 12, 3, 4, seed=11, dtype=dtype)
    assert_recurrence_kernels_equal_loop(monkeypatch, cpu_rnn,
                                         lambda: _run(arrays, True, reverse), split)


def test_recurrence_kernels_take_only_one_dtype_in_c_order():
    """Anything else (or no BLAS to call) leaves the Python step loop to run."""
    a = np.zeros((2, 3), np.float32)
    gemm = cpu_rnn.GEMM.get(a.dtype)
    if gemm is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS found here")
    assert cpu_rnn.fits(gemm, a, a.copy())
    assert not cpu_rnn.fits(gemm, a, a.astype(np.float64))
    assert not cpu_rnn.fits(gemm, a, np.zeros((3, 2), np.float32).T)
    assert not cpu_rnn.fits(None, a)


@pytest.mark.parametrize("make", ["lstm", "gru", "lstm_cell"])
def test_a_fused_graph_runs_its_backward_fused_where_fusion_is_off(make):
    """The backward runs the implementation the forward chose (as every fused op does),
    whatever the switch says when it runs; gradients as with fusion on throughout."""
    from engine.ops.rnn import lstm_cell

    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s) for s in ((5, 2, 4), (2, 12), (2, 3))]

    def grads(off_in_backward):
        engine.manual_seed(0)
        x, ha, c = leaves([a.copy() for a in arrays])
        if make == "lstm_cell":
            h, c2 = lstm_cell(x[0].reshape(2, 4).repeat(1, 3), ha, c)
            loss, ins = (h * h).sum() + c2.sum(), (x, ha, c)
        else:
            layer = nn.LSTM(4, 3) if make == "lstm" else nn.GRU(4, 3)
            layer.double()
            out, _ = layer(x)
            loss, ins = (out * out).sum(), (x,) + tuple(layer.parameters())
        with engine.use_fused(not off_in_backward):
            loss.backward()
        return [t.grad.numpy() for t in ins]

    for a, b in zip(grads(True), grads(False)):
        np.testing.assert_array_equal(a, b)
