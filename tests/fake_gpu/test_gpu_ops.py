"""The CUDA code path on a fake CuPy: the device, factories, the op table (values, float32,
second order), comparisons, scatters, gradchecks and the dispatch of fused ops."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine import Tensor, backend

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from gpu_checks import (  # noqa: E402
    assert_same, backward, leaves, on_gpu, to, upstream,
)
import fake_cupy  # noqa: E402
from op_table import OPS  # noqa: E402


FEW = settings(max_examples=5, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow])


# ----------------------------------------------------------------------------- the device
def test_fake_cuda_is_a_device(cuda):
    assert engine.cuda_is_available()
    x = engine.randn(3, 4)
    y = x.to("cuda")
    on_gpu(y)
    assert backend.array_module(y.data) is cuda
    assert y.cuda().data is y.data and y.to("cuda:0") is y
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    assert isinstance(y.cpu().data, np.ndarray) and y.cpu().device == "cpu"
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(y.data)
    with pytest.raises(RuntimeError, match="got cpu and cuda:0"):
        engine.add(x, y)
    with pytest.raises(RuntimeError, match="cuda:0 and cpu"):
        engine.matmul(y, x.T)
    assert "device='cuda:0'" in repr(y)
    before = fake_cupy.SYNC_CALLS[0]
    engine.synchronize()
    assert fake_cupy.SYNC_CALLS[0] == before + 1
    with pytest.raises(Exception, match="invalid device ordinal"):
        x.to("cuda:1")


def test_the_fake_is_as_strict_as_cupy(cuda):
    """The harness itself: what CuPy rejects, the fake rejects."""
    a = cuda.arange(6, dtype=np.float32).reshape(2, 3)
    host = np.ones(3, np.float32)
    for bad in (lambda: np.asarray(a), lambda: a + host, lambda: host * a,
                lambda: a + np.array(2.0), lambda: np.sum(a), lambda: np.add.reduce(a),
                lambda: cuda.maximum(a, host), lambda: a.__setitem__(0, host)):
        with pytest.raises(TypeError):
            bad()
    for missing in ("put_along_axis", "float128", "broadcast_shapes"):
        assert not hasattr(cuda, missing)
    assert not hasattr(a.flags, "writeable")
    with pytest.raises(TypeError, match="only supports"):
        sys.modules["cupyx"].scatter_add(cuda.zeros(3, dtype=np.int64), cuda.asarray([0, 0]), 1)
    assert fake_cupy.is_fake(a * np.float32(2)) and fake_cupy.is_fake(np.float64(2) * a)
    assert fake_cupy.is_fake(np.exp(a)) and fake_cupy.is_fake(a.sum())
    assert a[0, 1].shape == () and fake_cupy.is_fake(a[0, 1])     # 0-d arrays, not scalars
    assert a.astype(np.float32, copy=False) is a and cuda.asarray(a) is a
    b = cuda.asarray(host)
    host[0] = 5.0
    assert fake_cupy.is_fake(b) and b.get()[0] == 1.0             # a copy on the device
    b[1] = np.float32(7.0)
    b[2] = np.array(8.0)
    assert isinstance(b.get(), np.ndarray) and b.get().tolist() == [1.0, 7.0, 8.0]
    assert type(a).__module__ == "cupy._fake" and a.device.id == 0


def test_without_cupy_cuda_raises_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)          # import cupy fails
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_error", None)
    assert not engine.cuda_is_available()
    with pytest.raises(RuntimeError, match="CUDA is not available.*xpgrad\\[gpu\\]"):
        engine.zeros(2, device="cuda")


def test_factories_make_device_arrays(cuda):
    engine.manual_seed(5)
    cpu = [engine.zeros(2, 3), engine.ones(2), engine.empty(0, 2), engine.full((2,), 1.5),
           engine.full((2,), 3), engine.arange(5), engine.arange(0.0, 1.0, 0.25),
           engine.linspace(0, 1, 5), engine.eye(3, 2), engine.rand(2, 2), engine.randn(3),
           engine.randint(0, 9, (4,)), engine.randperm(6)]
    engine.manual_seed(5)
    d = "cuda"
    gpu = [engine.zeros(2, 3, device=d), engine.ones(2, device=d), engine.empty(0, 2, device=d),
           engine.full((2,), 1.5, device=d), engine.full((2,), 3, device=d),
           engine.arange(5, device=d), engine.arange(0.0, 1.0, 0.25, device=d),
           engine.linspace(0, 1, 5, device=d), engine.eye(3, 2, device=d),
           engine.rand(2, 2, device=d), engine.randn(3, device=d),
           engine.randint(0, 9, (4,), device=d), engine.randperm(6, device=d)]
    for i, (a, b) in enumerate(zip(cpu, gpu)):
        if a.numel():
            assert_same(a, b, f"factory {i}", rtol=0, atol=0)
        on_gpu(b)
    g = gpu[0]
    for like in (engine.zeros_like(g), engine.ones_like(g), engine.full_like(g, 2.0)):
        on_gpu(like)
        assert like.dtype == np.float32
    t = engine.tensor([[1.0, 2.0]], device="cuda", requires_grad=True)
    on_gpu(t)
    assert t.dtype == np.float32 and t.requires_grad
    assert engine.tensor(t).device == "cuda:0"


# ----------------------------------------------------------------------------- op table
def _run_op(op, args, kw, device, create_graph):
    xs = [to(a, device) for a in args]
    outs = leaves(op.fn(*xs, **kw))
    grads = upstream(outs)
    live = [(o, g) for o, g in zip(outs, grads) if o.requires_grad]
    inputs = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
    if not live or not inputs:
        return outs, [], []
    gxs = engine.grad([o for o, _ in live], inputs,
                      [engine.tensor(g, device=device) for _, g in live],
                      create_graph=create_graph, allow_unused=True)
    second = []
    if create_graph:
        terms = [(g * engine.tensor(v, device=device)).sum()
                 for g, v in zip(gxs, upstream(gxs, seed=1))
                 if g is not None and g.requires_grad]
        if terms:
            total = terms[0]
            for t in terms[1:]:
                total = total + t
            second = engine.grad([total], inputs, allow_unused=True)
    return outs, gxs, second


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
@FEW
@given(data=st.data(), create_graph=st.booleans())
def test_op_table_on_device(cuda, op, data, create_graph):
    """Forward, gradient and (half of the examples) second-order gradient of every op."""
    args, kw = op.case(data)
    cpu = _run_op(op, args, kw, "cpu", create_graph)
    gpu = _run_op(op, args, kw, "cuda", create_graph)
    for kind, a_list, b_list in zip(("output", "grad", "second-order grad"), cpu, gpu):
        assert len(a_list) == len(b_list)
        for i, (a, b) in enumerate(zip(a_list, b_list)):
            assert (a is None) == (b is None)
            if a is not None:
                assert_same(a, b, f"{op.name} {kind} {i}")


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
@FEW
@given(data=st.data())
def test_op_table_float32_on_device(cuda, op, data):
    args, kw = op.case(data)
    args = [a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
            for a in args]
    for device in ("cpu", "cuda"):
        xs = [to(a, device) for a in args]
        outs = leaves(op.fn(*xs, **kw))
        backward(outs, upstream(outs), device)
        if device == "cpu":
            ref = [o.numpy() for o in outs] + [x.grad.numpy() for x in xs
                                                if isinstance(x, Tensor) and x.grad is not None]
            continue
        got = outs + [x.grad for x in xs if isinstance(x, Tensor) and x.grad is not None]
        assert len(got) == len(ref)
        for g, r in zip(got, ref):
            on_gpu(g, op.name)
            assert g.dtype == r.dtype == np.float32 or r.dtype.kind != "f", op.name
            np.testing.assert_allclose(g.numpy(), r, rtol=1e-6, atol=1e-7, err_msg=op.name)


# ----------------------------------------------------------------------------- more ops
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_comparisons_selections_and_casts(cuda):
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((4, 5)).round(1).astype(np.float32)
    ys = rng.standard_normal((4, 5)).round(1).astype(np.float32)
    idx = np.array([[0, 3, 3], [2, 1, 0]])
    results = {}
    for device in ("cpu", "cuda"):
        x = engine.tensor(xs, device=device, requires_grad=True)
        y = engine.tensor(ys, device=device)
        pos = engine.tensor(idx, device=device)
        out = [engine.equal(x, y), engine.not_equal(x, 0.5), x < y, x <= 0.0, x > y,
               x >= y, engine.logical_and(x > 0, y > 0), engine.logical_or(x > 0, y > 0),
               engine.logical_not(x > 0), engine.isfinite(x / 0.0), engine.isnan(x * 0.0),
               engine.sign(x), x.argmax(dim=1), x.argmin(), engine.argmax(x, 0, True),
               engine.one_hot(pos, 5), engine.one_hot(pos), engine.one_hot(pos[0], 4, np.float32),
               engine.where(xs > 0, x, y), engine.where(x > y, x, 0.0),
               engine.where(engine.tensor(xs > 0, device=device), 1.0, y),
               x.astype(np.float64), x.double().float(), x.long(), x.clip(-0.5, 0.5),
               engine.erf(x), engine.gelu(x), engine.softplus(x, beta=2.0),
               engine.leaky_relu(x, 0.2), x[pos], x[:, idx[0]], x[xs > 0],
               engine.pad(x, ((1, 0), (0, 2)), value=-1.0)]
        loss = sum((o.astype(np.float32) * (k + 1)).sum() for k, o in enumerate(out)
                   if o.requires_grad)
        loss.backward()
        results[device] = out + [x.grad]
    for k, (a, b) in enumerate(zip(results["cpu"], results["cuda"])):
        assert_same(a, b, f"result {k}", rtol=1e-6, atol=1e-6)
    assert results["cuda"][23].dtype == np.int64 and results["cuda"][15].dtype == np.int64
    np.testing.assert_array_equal(results["cuda"][15].numpy(), np.eye(5, dtype=int)[idx])
    np.testing.assert_array_equal(results["cuda"][17].numpy(), np.eye(4)[idx[0]])
    assert results["cuda"][17].dtype == np.float32


def test_scatter_add_and_index_add_accumulate_repeats(cuda):
    rows = np.array([0, 2, 2, 0, 1])
    values = np.arange(15, dtype=np.float64).reshape(5, 3)
    want = np.zeros((3, 3))
    np.add.at(want, rows, values)
    target = cuda.zeros((3, 3), dtype=np.float64)
    engine.scatter_add(target, (cuda.asarray(rows),), cuda.asarray(values))
    on_gpu(target)
    np.testing.assert_array_equal(target.get(), want)
    v = engine.tensor(values, device="cuda", requires_grad=True)
    y = engine.index_add(v, engine.tensor(rows, device="cuda"), (3, 3))
    assert_same(Tensor(want), y, "index_add")
    y.backward(engine.ones(3, 3, dtype=np.float64, device="cuda") * 2.0)
    assert_same(Tensor(np.full((5, 3), 2.0)), v.grad, "index_add grad")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_gradcheck_and_anomaly_detection_on_device(cuda):
    x = engine.randn(3, 4, dtype=np.float64, device="cuda", requires_grad=True)
    w = engine.randn(4, 2, dtype=np.float64, device="cuda", requires_grad=True)
    assert engine.gradcheck(lambda a, b: engine.tanh(a @ b).logsumexp(dim=0), [x, w])
    assert engine.gradgradcheck(lambda a: (a * a).exp().sum(dim=1), [x])
    with pytest.raises(FloatingPointError, match="Log forward produced"):
        with engine.detect_anomaly():
            engine.log(x - 10.0)
    with pytest.raises(FloatingPointError, match="backward produced"):
        with engine.detect_anomaly():
            engine.sqrt(x * 0.0).sum().backward()


def test_fused_ops_dispatch_to_the_cuda_kernels_for_device_arrays(cuda):
    from engine import kernels

    x = engine.randn(2, 3, device="cuda")
    with engine.use_fused(True):
        assert kernels.select(x.data).__name__ == "engine.kernels.cuda"
        assert kernels.select(x.cpu().data).__name__ == "engine.kernels.cpu"
    assert kernels.select(x.data) is kernels.reference


def test_view_on_the_device_shares_memory_or_refuses(cuda):
    x = engine.randn(3, 4).to("cuda")
    with pytest.raises(RuntimeError, match=r"view: shape \(12,\) is not compatible"):
        x.t().view(12)
    v = x.t().view(2, 2, 3)
    on_gpu(v)
    np.testing.assert_array_equal(v.numpy().reshape(4, 3), x.t().numpy())
