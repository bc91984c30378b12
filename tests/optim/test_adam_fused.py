"""Adam and AdamW's one-pass kernel against the literal update: the same bits in float32
and float64 for every option, the kernel really taken, the literal step wherever the
kernel does not apply (fusion off, other dtypes, non-contiguous parameters)."""

import sys
from pathlib import Path

import numpy as np
import pytest

import engine
import optim
from engine.kernels import cpu

OPTIONS = [
    {},
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "decoupled_weight_decay": True},
    {"amsgrad": True},
    {"maximize": True},
    {"amsgrad": True, "maximize": True, "weight_decay": 0.05},
    {"amsgrad": True, "weight_decay": 0.2, "decoupled_weight_decay": True,
     "maximize": True, "betas": (0.8, 0.95), "eps": 1e-4},
]
SHAPES = [(), (7,), (3, 5), (2, 3, 4), (0, 4), (70_001,)]


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts the calls that reach the kernel."""
    calls = []
    real = cpu.adam_step

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(cpu, "adam_step", counted)
    optim.adam._cpu_kernel.cache_clear()
    yield calls
    optim.adam._cpu_kernel.cache_clear()


def _trajectory(fused, shape, dtype, kw, steps=6, seed=0, cls=optim.Adam):
    """Parameters and state after ``steps`` updates with fixed random gradients."""
    r = np.random.default_rng(seed)
    init = [r.standard_normal(shape).astype(dtype) for _ in range(2)]
    grads = [[r.standard_normal(shape).astype(dtype) for _ in init] for _ in range(steps)]
    with engine.use_fused(fused):
        params = [engine.tensor(a, requires_grad=True) for a in init]
        opt = cls(params, lr=0.03, **kw)
        for gs in grads:
            for p, g in zip(params, gs):
                p.grad = engine.from_numpy(g)
            opt.step()
    state = [{k: v if k == "step" else v.numpy() for k, v in opt.state[p].items()}
             for p in params]
    return [p.numpy() for p in params], state


def _assert_identical(a, b):
    (pa, sa), (pb, sb) = a, b
    for x, y in zip(pa, pb):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y, strict=True)
    for x, y in zip(sa, sb):
        assert sorted(x) == sorted(y)
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], strict=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", OPTIONS)
def test_kernel_equals_literal_update_bit_for_bit(kw, dtype, kernel_calls):
    for shape in SHAPES:
        kernel_calls.clear()
        fused = _trajectory(True, shape, dtype, kw)
        assert kernel_calls == [shape] * 12
        kernel_calls.clear()
        literal = _trajectory(False, shape, dtype, kw)
        assert kernel_calls == []
        _assert_identical(fused, literal)
        assert all(p.dtype == dtype for p in fused[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adamw_kernel_equals_literal_update(dtype, kernel_calls):
    kw = {"weight_decay": 0.3, "amsgrad": True}
    fused = _trajectory(True, (4, 6), dtype, kw, cls=optim.AdamW)
    literal = _trajectory(False, (4, 6), dtype, kw, cls=optim.AdamW)
    assert len(kernel_calls) == 12
    _assert_identical(fused, literal)


def test_nan_inf_and_zero_gradients_as_the_literal_update():
    """A NaN gradient reaches m, v and v_max in both; inf, 0 and huge values alike."""
    special = np.array([np.nan, np.inf, -np.inf, 0.0, 1e30, -1e-30, 3.0], dtype=np.float32)
    results = []
    for fused in (True, False):
        with engine.use_fused(fused), np.errstate(all="ignore"):
            p = engine.tensor(np.linspace(-1, 1, 7, dtype=np.float32), requires_grad=True)
            opt = optim.Adam([p], lr=0.1, amsgrad=True, weight_decay=0.01)
            for g in (special, special[::-1].copy(), np.ones(7, np.float32)):
                p.grad = engine.from_numpy(g)
                opt.step()
        state = opt.state[p]
        results.append([p.numpy()] + [state[k].numpy() for k in
                                      ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    v_max = results[0][3]
    assert np.isnan(v_max[[0, 6]]).all() and np.isfinite(v_max[3])


def test_gradient_in_any_layout_is_read_and_never_written(kernel_calls):
    r = np.random.default_rng(1)
    base = r.standard_normal((6, 4))
    g = base.T                                     # (4, 6), not C-contiguous
    results = []
    for fused in (True, False):
        with engine.use_fused(fused):
            p = engine.tensor(np.ones((4, 6)), requires_grad=True)
            p.grad = engine.from_numpy(g)
            opt = optim.Adam([p], lr=0.1, maximize=True, weight_decay=0.1)
            opt.step()
            opt.step()
        results.append(p.numpy())
    assert len(kernel_calls) == 2
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(g, base.T)
    assert p.grad.data is g


def _array_for(case):
    """A parameter and a gradient the kernel does not serve."""
    base = np.random.default_rng(2).standard_normal((5, 3))
    if case == "float16":
        return base.astype(np.float16), np.ones((5, 3), np.float16)
    if case == "non_contiguous":
        return base.T, np.ones((3, 5))
    return base.astype(np.float32), np.ones((5, 3), np.float64)     # gradient's dtype


@pytest.mark.parametrize("case", ["float16", "non_contiguous", "gradient_dtype"])
def test_literal_step_where_the_kernel_does_not_apply(case, kernel_calls):
    """float16 parameters, a non-contiguous parameter, a gradient of another dtype: the
    literal update in place, the same as with fusion off."""
    results = []
    for fused in (True, False):
        data, grad = _array_for(case)
        before = data.copy()
        with engine.use_fused(fused):
            p = engine.Tensor._make(data, None, 0).requires_grad_()
            p.grad = engine.from_numpy(grad)
            optim.Adam([p], lr=0.1, amsgrad=True).step()
        assert p.data is data and p.dtype == data.dtype
        assert not np.array_equal(data, before)
        results.append(data)
    assert kernel_calls == []
    np.testing.assert_array_equal(results[0], results[1])


def test_state_dict_round_trip_between_paths(tmp_path):
    """State written by the kernel continues on the literal path, bit for bit."""
    kw = {"amsgrad": True, "weight_decay": 0.1}
    straight = _trajectory(True, (3, 4), np.float32, kw, steps=8)
    r = np.random.default_rng(0)
    init = [r.standard_normal((3, 4)).astype(np.float32) for _ in range(2)]
    grads = [[r.standard_normal((3, 4)).astype(np.float32) for _ in init] for _ in range(8)]
    params = [engine.tensor(a, requires_grad=True) for a in init]
    opt = optim.Adam(params, lr=0.03, **kw)
    for k, gs in enumerate(grads):
        if k == 4:
            engine.save(opt.state_dict(), tmp_path / "adam.safetensors")
            opt = optim.Adam(params, lr=0.03, **kw)
            opt.load_state_dict(engine.load(tmp_path / "adam.safetensors"))
        with engine.use_fused(k < 4):
            for p, g in zip(params, gs):
                p.grad = engine.from_numpy(g)
            opt.step()
    for a, b in zip(straight[0], params):
        np.testing.assert_array_equal(a, b.numpy())


def test_device_arrays_take_the_literal_step_with_fusion_on(monkeypatch, kernel_calls):
    """On CuPy data (a fake CuPy here) the literal update runs, on the device."""
    sys.path.insert(0, str(Path(__file__).parents[1]))
    import fake_cupy

    fake_cupy.install(monkeypatch)
    kw = {"amsgrad": True, "weight_decay": 0.1}
    r = np.random.default_rng(3)
    init, g = r.standard_normal((3, 4)), r.standard_normal((3, 4))
    results = []
    for device in ("cpu", "cuda"):
        p = engine.tensor(init, device=device).requires_grad_()
        p.grad = engine.tensor(g, device=device)
        opt = optim.Adam([p], lr=0.05, **kw)
        opt.step()
        opt.step()
        assert p.device == opt.state[p]["exp_avg"].device
        assert p.device.startswith(device)
        results.append(p.numpy())
    assert kernel_calls == [(3, 4), (3, 4)]
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("kw", [OPTIONS[0], OPTIONS[-1]])
def test_a_large_parameter_shared_among_threads_gives_the_same_bits(monkeypatch,
                                                                     restore_threads, kw):
    """Parameters of ADAM_SPLIT elements or more are updated in ranges over the worker
    pool; the update is element by element, so the bits equal the literal step's."""
    from engine import threads

    engine.set_num_threads(2)
    monkeypatch.setattr(cpu, "ADAM_SPLIT", 1000)
    monkeypatch.setattr(threads._Contention, "pause_until", 0.0)
    monkeypatch.setattr(threads, "MIN_JUDGED", 1.0)     # no pause from these tiny splits
    parts = []
    real = threads.run_split

    def run_split(work, n, t):
        ran = real(work, n, t)
        parts.append((n, t, ran))
        return ran

    monkeypatch.setattr(threads, "run_split", run_split)
    fused = _trajectory(True, (3, 1001), np.float32, kw)
    assert parts and set(parts) == {(3003, 2, True)}
    parts.clear()
    _assert_identical(fused, _trajectory(False, (3, 1001), np.float32, kw))
    _trajectory(True, (999,), np.float32, kw)
    assert parts == []                                  # below ADAM_SPLIT: one thread
