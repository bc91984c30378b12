"""The CUDA code path, run without a GPU on a fake CuPy (tests/fake_cupy.py).

Every test installs the fake, moves its inputs to ``"cuda"`` and checks three things: the
results and gradients are fake device arrays (a plain NumPy array coming back means some
code ran NumPy on device data or built a host array it forgot to move), they equal the CPU
path's, and nothing mixes host and device arrays (the fake raises there as CuPy does).
Fused kernels run their reference formulas here; the Numba CUDA kernels themselves are
tested under Numba's simulator in tests/engine/test_kernels_cuda.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
import losses
import nn
import optim
from data import DataLoader, TensorDataset
from engine import Tensor, backend

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "engine"))
import fake_cupy  # noqa: E402
from op_table import OPS  # noqa: E402

FEW = settings(max_examples=5, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow])


@pytest.fixture
def cuda(monkeypatch):
    """The fake CuPy installed, fused kernels on their reference formulas."""
    cp = fake_cupy.install(monkeypatch)
    with engine.use_fused(False):
        yield cp


# ----------------------------------------------------------------------------- helpers
def on_gpu(t, what="tensor"):
    """Assert ``t`` (a Tensor or an array) lives on the fake device."""
    data = t.data if isinstance(t, Tensor) else t
    assert fake_cupy.is_fake(data), f"{what}: expected a device array, got {type(data)}"
    if isinstance(t, Tensor):
        assert t.device == "cuda:0", f"{what}: device {t.device}"


def leaves(obj):
    """The Tensors inside an output (tuples, lists, dicts), in order."""
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in leaves(o)]
    return []


def assert_same(cpu, gpu, what="value", rtol=1e-10, atol=1e-12):
    """``gpu`` is on the fake device, with the dtype, shape and values of ``cpu``."""
    on_gpu(gpu, what)
    assert gpu.dtype == cpu.dtype, f"{what}: dtype {gpu.dtype} != {cpu.dtype}"
    assert gpu.shape == cpu.shape, f"{what}: shape {gpu.shape} != {cpu.shape}"
    np.testing.assert_allclose(gpu.numpy(), cpu.numpy(), rtol=rtol, atol=atol, err_msg=what)


def to(x, device):
    """A Tensor from host data on ``device`` (float arrays require grad)."""
    if isinstance(x, np.ndarray):
        return engine.tensor(x, device=device, requires_grad=x.dtype.kind == "f")
    return x


def upstream(outs, seed=0):
    """Random upstream gradients (host arrays) for the outputs that require grad."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(o.shape).astype(o.dtype) for o in outs]


def backward(outs, grads, device):
    live = [(o, g) for o, g in zip(outs, grads) if o.requires_grad]
    if live:
        engine.backward([o for o, _ in live],
                        [engine.tensor(g, device=device) for _, g in live])


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
        if a.size:
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
               engine.sign(x), x.argmax(axis=1), x.argmin(), engine.argmax(x, 0, True),
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
    assert engine.gradcheck(lambda a, b: engine.tanh(a @ b).logsumexp(axis=0), [x, w])
    assert engine.gradgradcheck(lambda a: (a * a).exp().sum(axis=1), [x])
    with pytest.raises(FloatingPointError, match="Log forward produced"):
        with engine.detect_anomaly():
            engine.log(x - 10.0)
    with pytest.raises(FloatingPointError, match="backward produced"):
        with engine.detect_anomaly():
            engine.sqrt(x * 0.0).sum().backward()


def test_fused_ops_dispatch_to_the_cuda_kernels_for_device_arrays(cuda):
    from engine.kernels import switch

    x = engine.randn(2, 3, device="cuda")
    with engine.use_fused(True):
        assert switch.implementation(x.data) == "cuda"
        assert switch.implementation(x.cpu().data) == "cpu"
    assert switch.implementation(x.data) == "reference"


# ----------------------------------------------------------------------------- nn layers
def _host_inputs(spec, rng):
    """Host arrays from a spec: a shape gives normal floats; arrays pass through."""
    out = []
    for s in spec:
        if isinstance(s, tuple):
            out.append(rng.standard_normal(s))
        else:
            out.append(s)
    return out


def run_module(make, spec, device, call=None, seed=0, train=True, steps=1):
    """Build (seeded), move to ``device``, run forward + random backward ``steps`` times.

    Returns outputs, input gradients, parameter gradients and buffers, in order."""
    engine.manual_seed(seed)
    m = make().double().to(device)
    m.train(train)
    host = _host_inputs(spec, np.random.default_rng(seed))
    results = []
    for step in range(steps):
        xs = [to(a, device) if isinstance(a, np.ndarray) else a for a in host]
        engine.manual_seed(seed + 1 + step)          # the same dropout masks on both
        outs = leaves(call(m, *xs) if call else m(*xs))
        backward(outs, upstream(outs, seed=step), device)
        results += outs + [x.grad for x in xs if isinstance(x, Tensor) and x.requires_grad]
    results += [p.grad for _, p in m.named_parameters()]
    results += [b for _, b in m.named_buffers() if isinstance(b, Tensor)]
    return results


def compare_module(make, spec, call=None, train=True, steps=1, rtol=1e-10, atol=1e-12):
    cpu = run_module(make, spec, "cpu", call, train=train, steps=steps)
    gpu = run_module(make, spec, "cuda", call, train=train, steps=steps)
    assert len(cpu) == len(gpu) and cpu
    for i, (a, b) in enumerate(zip(cpu, gpu)):
        assert (a is None) == (b is None), f"result {i}"
        if a is not None:
            assert_same(a, b, f"result {i}", rtol=rtol, atol=atol)


_pad = np.array([[False, False, False, True, True], [False] * 5])        # (N=2, S=5)
_causal = np.triu(np.ones((4, 5), dtype=bool), k=2)                     # (L=4, S=5)
_idx = np.array([[1, 2, 2, 0], [6, 1, 3, 3]])
LAYERS = {
    "linear": (lambda: nn.Linear(4, 3), [(2, 5, 4)], None),
    "linear_nobias": (lambda: nn.Linear(4, 3, bias=False), [(6, 4)], None),
    "activations": (lambda: nn.Sequential(nn.ReLU(), nn.GELU(), nn.GELU("tanh"), nn.Tanh(),
                                          nn.Sigmoid(), nn.LeakyReLU(0.2), nn.Softmax(-1),
                                          nn.LogSoftmax(1), nn.Flatten(), nn.Identity()),
                    [(2, 3, 4)], None),
    "mlp": (lambda: nn.MLP([4, 8, 3], activation="gelu", dropout=0.3), [(5, 4)], None),
    "conv": (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), [(2, 3, 7, 6)], None),
    "conv_groups": (lambda: nn.Conv2d(4, 6, (3, 2), padding=(2, 1), dilation=2, groups=2,
                                      bias=False), [(2, 4, 6, 5)], None),
    "conv_same": (lambda: nn.Conv2d(2, 3, 3, padding="same", padding_mode="reflect"),
                  [(1, 2, 5, 5)], None),
    "maxpool": (lambda: nn.MaxPool2d(2), [(2, 3, 6, 5)], None),
    "maxpool_geometry": (lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
                         [(2, 2, 7, 6)], None),
    "maxpool_indices": (lambda: nn.MaxPool2d(2, return_indices=True), [(1, 2, 4, 4)], None),
    "avgpool": (lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
                [(2, 3, 7, 6)], None),
    "avgpool_ceil": (lambda: nn.AvgPool2d(2, ceil_mode=True, divisor_override=3),
                     [(1, 2, 5, 5)], None),
    "batchnorm1d": (lambda: nn.BatchNorm1d(4), [(6, 4)], None),
    "batchnorm1d_3d": (lambda: nn.BatchNorm1d(4, momentum=None), [(3, 4, 5)], None),
    "batchnorm2d": (lambda: nn.BatchNorm2d(3), [(4, 3, 5, 5)], None),
    "layernorm": (lambda: nn.LayerNorm(5), [(2, 3, 5)], None),
    "layernorm_2d": (lambda: nn.LayerNorm([3, 5], elementwise_affine=False), [(2, 3, 5)],
                     None),
    "embedding": (lambda: nn.Embedding(7, 3, padding_idx=1), [_idx], None),
    "embedding_max_norm": (lambda: nn.Embedding(7, 3, max_norm=1.0, scale_grad_by_freq=True),
                           [_idx], None),
    "dropout": (lambda: nn.Dropout(0.4), [(6, 7)], None),
    "positional": (lambda: nn.PositionalEncoding(6, max_len=20, dropout=0.1), [(5, 2, 6)],
                   None),
    "lstm": (lambda: nn.LSTM(4, 5, num_layers=2, batch_first=True, bidirectional=True,
                             dropout=0.2), [(2, 6, 4)], None),
    "lstm_state": (lambda: nn.LSTM(3, 4), [(5, 2, 3), (1, 2, 4), (1, 2, 4)],
                   lambda m, x, h, c: m(x, (h, c))),
    "lstm_cell": (lambda: nn.LSTMCell(3, 4), [(2, 3)], None),
    "mha": (lambda: nn.MultiheadAttention(8, 2), [(4, 2, 8)],
            lambda m, x: m(x, x, x, need_weights=True)),
    "mha_masks": (lambda: nn.MultiheadAttention(8, 2, dropout=0.2, kdim=6, vdim=3),
                  [(4, 2, 8), (5, 2, 6), (5, 2, 3)],
                  lambda m, q, k, v: m(q, k, v, key_padding_mask=_pad, attn_mask=_causal,
                                       average_attn_weights=False)),
    "mha_device_masks": (lambda: nn.MultiheadAttention(8, 4, batch_first=True),
                         [(2, 5, 8), _pad, (5, 5)],
                         lambda m, x, pad, bias: m(x, x, x, key_padding_mask=pad,
                                                   attn_mask=bias.detach())),
    "mha_causal": (lambda: nn.MultiheadAttention(8, 2), [(4, 2, 8)],
                   lambda m, x: m(x, x, x, is_causal=True, need_weights=False)),
    "sdpa": (lambda: nn.Identity(), [(2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), ~_causal],
             lambda m, q, k, v, keep: nn.functional.scaled_dot_product_attention(
                 q, k, v, attn_mask=keep, dropout_p=0.25, scale=0.3)),
    "sdpa_list_mask": (lambda: nn.Identity(), [(3, 4, 8), (3, 5, 8), (3, 5, 6)],
                       lambda m, q, k, v: nn.functional.scaled_dot_product_attention(
                           q, k, v, attn_mask=(~_causal).tolist(), is_causal=True)),
    "encoder_layer": (lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1,
                                                         batch_first=True, norm_first=True,
                                                         activation="gelu"),
                      [(2, 5, 8)],
                      lambda m, x: m(x, src_key_padding_mask=_pad, is_causal=False)),
    "decoder_layer": (lambda: nn.TransformerDecoderLayer(8, 2, 16, dropout=0.1),
                      [(4, 2, 8), (5, 2, 8)],
                      lambda m, t, mem: m(t, mem, tgt_mask=np.triu(np.ones((4, 4), bool), 1),
                                          memory_key_padding_mask=_pad)),
    "transformer": (lambda: nn.Transformer(8, 2, 2, 1, 16, dropout=0.1, batch_first=True),
                    [(2, 5, 8), (2, 4, 8)],
                    lambda m, s, t: m(s, t, tgt_mask=nn.Transformer
                                      .generate_square_subsequent_mask(4, device=s.device,
                                                                       dtype=np.float64),
                                      src_key_padding_mask=_pad,
                                      memory_key_padding_mask=_pad)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_forward_backward_on_device(cuda, name):
    make, spec, call = LAYERS[name]
    compare_module(make, spec, call, steps=2)


@pytest.mark.parametrize("name", ["batchnorm1d", "batchnorm2d", "dropout", "mha_masks",
                                  "lstm", "transformer"])
def test_layer_in_eval_mode_on_device(cuda, name):
    make, spec, call = LAYERS[name]
    compare_module(make, spec, call, train=False)


def test_host_masks_and_targets_name_both_devices(cuda):
    q = engine.randn(2, 4, 8, device="cuda")
    with pytest.raises(RuntimeError, match="attn_mask is on cpu but the input is on cuda:0"):
        nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((4, 4), bool))
    logits = engine.randn(3, 4, device="cuda")
    with pytest.raises(RuntimeError, match="target is on cpu but the input is on cuda:0"):
        losses.cross_entropy(logits, np.array([0, 1, 2]))
    want = losses.cross_entropy(logits.cpu(), [0, 3, 2])
    assert_same(want, losses.cross_entropy(logits, [0, 3, 2]), "list target")


# ----------------------------------------------------------------------------- losses
_labels = np.array([0, 2, 1, 2, 0, 1])


def like(a, x, device):
    """A float target in the dtype of ``x``."""
    return engine.tensor(a, dtype=x.dtype, device=device)



_labels_ignored = np.array([0, -100, 1, 2, -100, 1])
_probs = np.random.default_rng(3).dirichlet(np.ones(3), size=6)
_binary = (np.random.default_rng(4).random((6, 3)) > 0.5).astype(np.float64)
LOSSES = {
    "mse": lambda x, d: losses.mse_loss(x, like(_probs, x, d)),
    "mse_sum": lambda x, d: losses.mse_loss(x, like(_probs, x, d), "sum"),
    "l1_none": lambda x, d: losses.l1_loss(x, like(_probs, x, d), "none"),
    "smooth_l1": lambda x, d: losses.smooth_l1_loss(x, like(_probs, x, d),
                                                    beta=0.5),
    "huber": lambda x, d: losses.huber_loss(x, like(_probs, x, d), delta=0.3),
    "ce": lambda x, d: losses.cross_entropy(x, engine.tensor(_labels, device=d)),
    "ce_options": lambda x, d: losses.cross_entropy(
        x, engine.tensor(_labels_ignored, device=d), weight=[0.2, 1.0, 3.0],
        label_smoothing=0.1, reduction="sum"),
    "ce_none": lambda x, d: losses.cross_entropy(x, engine.tensor(_labels_ignored, device=d),
                                                 reduction="none"),
    "ce_probs": lambda x, d: losses.cross_entropy(x, like(_probs, x, d),
                                                  weight=like([1.0, 2.0, 0.5], x, d),
                                                  label_smoothing=0.2),
    "ce_spatial": lambda x, d: losses.cross_entropy(
        x.reshape(2, 3, 3).swapaxes(1, 2), engine.tensor(_labels.reshape(2, 3), device=d)),
    "nll": lambda x, d: losses.nll_loss(engine.log_softmax(x, 1),
                                        engine.tensor(_labels_ignored, device=d),
                                        weight=like([1.0, 0.5, 2.0], x, d)),
    "bce": lambda x, d: losses.binary_cross_entropy(engine.sigmoid(x),
                                                    like(_binary, x, d),
                                                    weight=[1.0, 2.0, 3.0]),
    "bce_logits": lambda x, d: losses.binary_cross_entropy_with_logits(
        x, like(_binary, x, d), pos_weight=like([3.0, 1.0, 0.5], x, d),
        reduction="none"),
    "modules": lambda x, d: (
        losses.MSELoss()(x, like(_probs, x, d))
        + losses.L1Loss(reduction="sum")(x, like(_probs, x, d))
        + losses.SmoothL1Loss(beta=0.2)(x, like(_probs, x, d))
        + losses.HuberLoss(delta=2.0)(x, like(_probs, x, d))
        + losses.CrossEntropyLoss(label_smoothing=0.05)(x, engine.tensor(_labels, device=d))
        + losses.NLLLoss(ignore_index=2)(x, engine.tensor(_labels, device=d))
        + losses.BCELoss()(engine.sigmoid(x), like(_binary, x, d))
        + losses.BCEWithLogitsLoss(weight=like([1.0, 2.0, 3.0], x, d))(
            x, like(_binary, x, d))),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_on_device(cuda, name):
    logits = np.random.default_rng(0).standard_normal((6, 3))
    results = {}
    for device in ("cpu", "cuda"):
        x = engine.tensor(logits, device=device, requires_grad=True)
        loss = LOSSES[name](x, device)
        backward([loss], upstream([loss]), device)
        results[device] = (loss, x.grad)
    for k, (a, b) in enumerate(zip(results["cpu"], results["cuda"])):
        assert_same(a, b, f"{name} {'loss' if k == 0 else 'grad'}")


def test_losses_keep_float32_on_device(cuda):
    x = engine.randn(6, 3, device="cuda", requires_grad=True)
    for name, fn in LOSSES.items():
        loss = fn(x, "cuda")
        on_gpu(loss, name)
        assert loss.dtype == np.float32, name


def test_metrics_take_device_tensors(cuda):
    from losses import metrics

    y = engine.tensor([0, 1, 1, 2, 2, 0], device="cuda")
    scores = engine.tensor(np.eye(3)[[0, 1, 2, 2, 1, 0]], device="cuda")
    assert metrics.accuracy(y, scores) == metrics.accuracy(y.cpu(), scores.cpu()) == 4 / 6
    np.testing.assert_array_equal(metrics.confusion_matrix(y, scores),
                                  metrics.confusion_matrix(y.numpy(), scores.numpy()))
    for f in (metrics.precision, metrics.recall, metrics.f1_score):
        assert f(y, scores, average="macro") == f(y.numpy(), scores.numpy(), average="macro")


# ----------------------------------------------------------------------------- optim
def _model(device=None):
    engine.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double().to(device)


OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1),
    "sgd_nesterov": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True,
                                        weight_decay=0.01),
    "sgd_dampening": lambda p: optim.SGD(p, lr=0.1, momentum=0.5, dampening=0.3,
                                         maximize=True),
    "adam": lambda p: optim.Adam(p, lr=0.01, weight_decay=0.1),
    "adam_amsgrad": lambda p: optim.Adam(p, lr=0.01, amsgrad=True),
    "adamw": lambda p: optim.AdamW(p, lr=0.01, amsgrad=True),
    "rmsprop": lambda p: optim.RMSprop(p, lr=0.01, momentum=0.9, centered=True,
                                       weight_decay=0.01),
    "adagrad": lambda p: optim.Adagrad(p, lr=0.1, lr_decay=0.01, weight_decay=0.01,
                                       initial_accumulator_value=0.1),
    "groups": lambda p: optim.Adam([{"params": p[:2], "lr": 0.1}, {"params": p[2:]}],
                                   lr=0.01),
}


def _optimize(make_opt, device, steps=4, clip=None, scheduler=None):
    model = _model(device)
    opt = make_opt(list(model.parameters()))
    sched = scheduler(opt) if scheduler else None
    rng = np.random.default_rng(7)
    x = engine.tensor(rng.standard_normal((5, 4)), device=device)
    y = engine.tensor(rng.integers(0, 3, 5), device=device)
    norms, lrs = [], []
    for _ in range(steps):
        opt.zero_grad()
        losses.cross_entropy(model(x), y).backward()
        if clip is not None:
            norms.append(clip(model.parameters()))
        opt.step()
        if sched is not None:
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
    return model, opt, norms, lrs


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_steps_on_device(cuda, name):
    cpu, cpu_opt, _, _ = _optimize(OPTIMIZERS[name], "cpu")
    gpu, gpu_opt, _, _ = _optimize(OPTIMIZERS[name], "cuda")
    for (n, a), (_, b) in zip(cpu.named_parameters(), gpu.named_parameters()):
        assert_same(a, b, n)
    for pa, pb in zip(cpu.parameters(), gpu.parameters()):
        state_a, state_b = cpu_opt.state[pa], gpu_opt.state[pb]
        assert state_a.keys() == state_b.keys()
        for key in state_a:
            if isinstance(state_a[key], Tensor):
                assert_same(state_a[key], state_b[key], f"state {key}")
            else:
                assert state_a[key] == state_b[key]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
def test_clip_grad_norm_on_device(cuda, norm_type):
    clip = lambda ps: optim.clip_grad_norm_(ps, max_norm=0.05, norm_type=norm_type)
    cpu, _, cpu_norms, _ = _optimize(OPTIMIZERS["sgd"], "cpu", clip=clip)
    gpu, _, gpu_norms, _ = _optimize(OPTIMIZERS["sgd"], "cuda", clip=clip)
    for a, b in zip(cpu_norms, gpu_norms):
        assert_same(a, b, "total norm")
    for a, b in zip(cpu.parameters(), gpu.parameters()):
        assert_same(a, b, "clipped step")
    model = _model("cuda")
    model(engine.ones(2, 4, dtype=np.float64, device="cuda")).sum().backward()
    optim.clip_grad_value_(model.parameters(), 0.01)
    for p in model.parameters():
        on_gpu(p.grad)
        assert float(abs(p.grad).max()) <= 0.01


@pytest.mark.parametrize("make", [
    lambda o: optim.lr_scheduler.StepLR(o, 2, gamma=0.5),
    lambda o: optim.lr_scheduler.MultiStepLR(o, [1, 3], gamma=0.1),
    lambda o: optim.lr_scheduler.ExponentialLR(o, 0.9),
    lambda o: optim.lr_scheduler.CosineAnnealingLR(o, 3, eta_min=1e-4),
    lambda o: optim.lr_scheduler.LinearLR(o, 0.1, 1.0, total_iters=2),
    lambda o: optim.lr_scheduler.LambdaLR(o, lambda e: 1 / (e + 1)),
    lambda o: optim.lr_scheduler.SequentialLR(
        o, [optim.lr_scheduler.LinearLR(o, 0.5, total_iters=2),
            optim.lr_scheduler.ExponentialLR(o, 0.5)], milestones=[2]),
])
def test_schedulers_drive_device_optimizers(cuda, make):
    cpu, _, _, cpu_lrs = _optimize(OPTIMIZERS["adam"], "cpu", steps=5, scheduler=make)
    gpu, _, _, gpu_lrs = _optimize(OPTIMIZERS["adam"], "cuda", steps=5, scheduler=make)
    assert cpu_lrs == gpu_lrs and all(isinstance(lr, float) for lr in gpu_lrs)
    for a, b in zip(cpu.parameters(), gpu.parameters()):
        assert_same(a, b, "scheduled step")


def test_pruning_on_device(cuda):
    from optim import pruning

    results = {}
    for device in ("cpu", "cuda"):
        model = _model(device)
        pruning.l1_unstructured(model[0], "weight", amount=0.4)
        pruning.l1_unstructured(model[0], "weight", amount=3)
        pruning.global_unstructured([(model[0], "bias"), (model[2], "weight")], amount=0.5)
        pruning.identity(model[2], "bias")
        opt = optim.SGD(model.parameters(), lr=0.5)
        model(engine.ones(3, 4, dtype=np.float64, device=device)).sum().backward()
        opt.step()                                 # the masks are applied after the step
        assert pruning.is_pruned(model)
        masks = {n: b for n, b in model.named_buffers() if n.endswith("_mask")}
        pruning.remove(model[0], "weight")
        results[device] = list(model.parameters()) + [masks[k] for k in sorted(masks)]
    for a, b in zip(results["cpu"], results["cuda"]):
        assert_same(a, b, "pruned")
    assert int((results["cuda"][0] == 0.0).sum()) == 13 + 3     # round(0.4 · 32) + 3


# ----------------------------------------------------------------------------- data
def test_dataloader_moves_batches_to_the_device(cuda):
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    y = np.arange(10)
    for dataset in (TensorDataset(x, y),
                    TensorDataset(engine.tensor(x, device="cuda"), engine.tensor(y))):
        batches = {}
        for device in ("cpu", "cuda"):
            loader = DataLoader(dataset, batch_size=4, shuffle=True, seed=3, device=device)
            batches[device] = [b for xb_yb in loader for b in xb_yb]
        assert len(batches["cuda"]) == 6
        for a, b in zip(batches["cpu"], batches["cuda"]):
            assert_same(a, b, "batch", rtol=0, atol=0)
    samples = [(engine.tensor(x[i], device="cuda"), {"id": i, "y": np.float32(i)})
               for i in range(5)]
    loader = DataLoader(samples, batch_size=2, collate_fn=None, device="cuda")
    xb, meta = next(iter(loader))
    on_gpu(xb)
    on_gpu(meta["id"])
    on_gpu(meta["y"])
    assert meta["y"].dtype == np.float32


# ----------------------------------------------------------------------------- modules
def test_same_seed_same_initial_weights_on_either_device(cuda):
    makes = [lambda **kw: nn.Linear(5, 4, **kw), lambda **kw: nn.Conv2d(2, 3, 3, **kw),
             lambda **kw: nn.Embedding(6, 4, **kw), lambda **kw: nn.LayerNorm(4, **kw),
             lambda **kw: nn.BatchNorm2d(3, **kw), lambda **kw: nn.LSTM(3, 4, 2, **kw),
             lambda **kw: nn.MultiheadAttention(8, 2, **kw),
             lambda **kw: nn.Transformer(8, 2, 1, 1, 16, **kw)]
    for make in makes:
        engine.manual_seed(11)
        cpu = make()
        engine.manual_seed(11)
        moved = make().to("cuda")
        engine.manual_seed(11)
        built = make(device="cuda")
        for (name, a), b, c in zip(cpu.state_dict().items(), moved.state_dict().values(),
                                   built.state_dict().values()):
            assert_same(a, b, f"{type(cpu).__name__}.{name} moved", rtol=0, atol=0)
            assert_same(a, c, f"{type(cpu).__name__}.{name} built", rtol=0, atol=0)


def test_init_functions_on_device_parameters(cuda):
    from nn import init

    fns = [init.uniform_, init.normal_, init.trunc_normal_, lambda t: init.constant_(t, 0.3),
           init.zeros_, init.ones_, init.eye_, init.xavier_uniform_, init.xavier_normal_,
           init.kaiming_uniform_, lambda t: init.kaiming_normal_(t, mode="fan_out"),
           init.orthogonal_]
    for fn in fns:
        engine.manual_seed(2)
        a = fn(nn.Parameter(np.zeros((4, 6), np.float32)))
        engine.manual_seed(2)
        b = fn(nn.Parameter(np.zeros((4, 6), np.float32)).to("cuda"))
        assert_same(a, b, getattr(fn, "__name__", "init"), rtol=0, atol=0)


def _transformer_steps(device, steps=3):
    engine.manual_seed(0)
    model = nn.Transformer(8, 2, 1, 1, 16, dropout=0.2, batch_first=True).to(device)
    head = nn.Linear(8, 5).to(device)
    emb = nn.Embedding(5, 8).to(device)
    params = list(model.parameters()) + list(head.parameters()) + list(emb.parameters())
    opt = optim.AdamW(params, lr=1e-2)
    rng = np.random.default_rng(0)
    src = engine.tensor(rng.integers(0, 5, (3, 6)), device=device)
    tgt = engine.tensor(rng.integers(0, 5, (3, 4)), device=device)
    mask = nn.Transformer.generate_square_subsequent_mask(4, device=device)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        logits = head(model(emb(src), emb(tgt), tgt_mask=mask))
        loss = losses.cross_entropy(logits.reshape(-1, 5), tgt.reshape(-1))
        loss.backward()
        optim.clip_grad_norm_(params, 1.0)
        opt.step()
        out.append(loss.item())
    return out


def test_training_gives_the_same_losses_on_either_device(cuda):
    from data import TensorDataset as TD

    def mlp_losses(device):
        engine.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
        model.to(device)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        rng = np.random.default_rng(1)
        ds = TD(rng.standard_normal((20, 6)).astype(np.float32), rng.integers(0, 3, 20))
        out = []
        for _ in range(2):
            for xb, yb in DataLoader(ds, batch_size=8, shuffle=True, device=device):
                opt.zero_grad()
                loss = losses.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                out.append(loss.item())
        return out

    np.testing.assert_allclose(mlp_losses("cuda"), mlp_losses("cpu"), rtol=1e-6)
    np.testing.assert_allclose(_transformer_steps("cuda"), _transformer_steps("cpu"),
                               rtol=1e-5)


def test_checkpoint_from_the_device_loads_on_the_cpu(cuda, tmp_path):
    model, opt, _, _ = _optimize(OPTIMIZERS["adam"], "cuda", steps=2)
    bn = nn.BatchNorm1d(3).to("cuda")
    bn(engine.randn(4, 3, device="cuda"))
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "bn": bn.state_dict(),
             "raw": cuda.arange(3.0), "step": engine.tensor(7, device="cuda")}
    for t in state["model"].values():
        on_gpu(t)
    path = tmp_path / "ckpt.safetensors"
    engine.save(state, path)
    assert all(p.device == "cuda:0" for p in model.parameters())
    loaded = engine.load(path)
    fresh = _model()
    fresh.load_state_dict(loaded["model"])
    for a, b in zip(fresh.parameters(), model.parameters()):
        assert a.device == "cpu"
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    cpu_opt = optim.Adam(fresh.parameters(), lr=0.01, weight_decay=0.1)
    cpu_opt.load_state_dict(loaded["opt"])
    for p in fresh.parameters():
        assert all(v.device == "cpu" for v in cpu_opt.state[p].values()
                   if isinstance(v, Tensor))
    back = _model("cuda")                               # CPU state into a device model
    back.load_state_dict(loaded["model"])
    gpu_opt = optim.Adam(back.parameters(), lr=0.01, weight_decay=0.1)
    gpu_opt.load_state_dict(loaded["opt"])
    for p, q in zip(back.parameters(), model.parameters()):
        assert_same(q, p, "reloaded")
        for key, v in gpu_opt.state[p].items():
            if isinstance(v, Tensor):
                assert_same(opt.state[q][key], v, f"state {key}")
    bn2 = nn.BatchNorm1d(3)
    bn2.load_state_dict(loaded["bn"])
    np.testing.assert_array_equal(bn2.running_mean.numpy(), bn.running_mean.numpy())
    assert int(bn2.num_batches_tracked.item()) == 1
    assert isinstance(loaded["raw"], np.ndarray) and loaded["raw"].tolist() == [0, 1, 2]
    assert loaded["step"].shape == () and loaded["step"].item() == 7


def test_module_moves_and_casts_keep_the_device(cuda):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.PositionalEncoding(4, 8))
    model.cuda() if hasattr(model, "cuda") else model.to("cuda")
    for t in list(model.parameters()) + [b for b in model.buffers() if b is not None]:
        on_gpu(t)
    model.double()
    for t in model.parameters():
        on_gpu(t)
        assert t.dtype == np.float64
    model.to("cpu")
    assert all(t.device == "cpu" for t in model.parameters())
    assert all(b.device == "cpu" for b in model.buffers() if b is not None)


# ----------------------------------------------------------------------------- CUDA kernels
# The fused ops on device data run engine/kernels/cuda.py: its allocations, copies and
# shapes on the array module, then a Numba CUDA launch. With Numba's CUDA simulator (in a
# fresh interpreter: it is chosen when numba.cuda is first imported) the launch runs on the
# fake arrays' host memory, so the whole CUDA path runs here except the real launch.
SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" and \
    os.environ.get("XPGRAD_FAKE_CUDASIM") == "1"


@pytest.fixture
def simulated_cuda(monkeypatch):
    """The fake CuPy with the fused kernels on, their launches in the CUDA simulator."""
    fake_cupy.install(monkeypatch)
    launched = fake_cupy.simulate_kernels(monkeypatch)
    with engine.use_fused(True):
        yield launched


def _fused_vs_reference(fn, spec, dtype, rtol, atol):
    """``fn`` on the device with the (simulated) CUDA kernels and on the CPU with the
    reference formulas: outputs and gradients."""
    host = [a.astype(dtype) if a.dtype.kind == "f" else a
            for a in _host_inputs(spec, np.random.default_rng(0))]
    results = []
    for device, fused_on in (("cuda", True), ("cpu", False)):
        with engine.use_fused(fused_on):
            xs = [to(a, device) for a in host]
            engine.manual_seed(1)
            outs = leaves(fn(*xs))
            backward(outs, upstream(outs), device)
            results.append(outs + [x.grad for x in xs if x.requires_grad])
    for i, (gpu, cpu) in enumerate(zip(*results)):
        assert_same(cpu, gpu, f"result {i}", rtol=rtol, atol=atol)


_kpm = np.array([[False, False, True], [False, False, False]])
FUSED_CASES = {
    "softmax": (lambda x: engine.softmax(x), [(3, 5)]),
    "log_softmax_axis0": (lambda x: engine.log_softmax(x, axis=0), [(4, 3)]),
    "cross_entropy": (lambda x: losses.cross_entropy(
        x, engine.tensor([4, -100, 0], device=x.device), label_smoothing=0.2), [(3, 5)]),
    "cross_entropy_none": (lambda x: losses.cross_entropy(
        x, engine.tensor([1, 2, 0], device=x.device), reduction="none"), [(3, 4)]),
    "layer_norm": (lambda x, w, b: engine.kernels.layer_norm(x, 5, w, b), [(3, 5), (5,),
                                                                            (5,)]),
    "layer_norm_plain": (lambda x: engine.kernels.layer_norm(x, (2, 3)), [(2, 2, 3)]),
    "attention": (lambda q, k, v: engine.kernels.scaled_dot_product_attention(
        q, k, v, is_causal=True, key_padding_mask=engine.tensor(_kpm, device=q.device),
        need_weights=True), [(2, 1, 3, 4), (2, 1, 3, 4), (2, 1, 3, 4)]),
    "attention_bias_dropout": (lambda q, k, v, m: engine.kernels.scaled_dot_product_attention(
        q, k, v, attn_mask=m, dropout_p=0.3), [(1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 3, 4),
                                               (3, 3)]),
    "mha": (lambda x: nn.MultiheadAttention(4, 2).to(x.device, x.dtype)(
        x, x, x, key_padding_mask=_kpm, attn_mask=np.triu(np.ones((3, 3), bool), 1))[0],
        [(3, 2, 4)]),
}


if SIMULATED:     # collected only in the simulator's interpreter
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    @pytest.mark.parametrize("name", list(FUSED_CASES))
    def test_fused_cuda_kernels_on_device_arrays(simulated_cuda, name, dtype):
        fn, spec = FUSED_CASES[name]
        tol = dict(rtol=1e-9, atol=1e-11) if dtype == np.float64 else \
            dict(rtol=2e-4, atol=2e-5)
        _fused_vs_reference(fn, spec, dtype, **tol)
        assert simulated_cuda, "no CUDA kernel was launched"


def test_fused_cuda_path_under_the_simulator():
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", XPGRAD_FAKE_CUDASIM="1",
               PYTHONPATH=str(root), HYPOTHESIS_PROFILE="quick")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         str(Path(__file__)), "-k", "test_fused_cuda_kernels_on_device_arrays"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert f"{2 * len(FUSED_CASES)} passed" in proc.stdout, proc.stdout[-2000:]


def test_unused_outputs_get_zero_gradients_on_the_device(cuda):
    x = engine.randn(4, 3, device="cuda", requires_grad=True)
    engine.split(x * 2.0, 2)[0].sum().backward()       # no output of split is alive
    on_gpu(x.grad)
    np.testing.assert_array_equal(x.grad.numpy(), np.repeat([[2.0], [0.0]], 2, axis=0)
                                  * np.ones((4, 3), np.float32))
    q = engine.randn(2, 3, 4, device="cuda", requires_grad=True)
    out, _ = nn.MultiheadAttention(4, 2, batch_first=True).to("cuda")(q * 1.0, q, q)
    out.sum().backward()
    on_gpu(q.grad)


# ----------------------------------------------------------------------------- distributed
class _TwoRanks:
    """An MPI communicator of two ranks whose other rank holds 3x this rank's values."""

    def Allreduce(self, sendbuf, recvbuf, op=None):
        assert isinstance(recvbuf, np.ndarray), "MPI gets host buffers"
        recvbuf *= recvbuf.dtype.type(4)

    def bcast(self, obj, root=0):
        return obj

    def allgather(self, obj):
        return [obj, 3 * obj if isinstance(obj, (int, float)) else obj]

    def Bcast(self, buf, root=0):
        assert isinstance(buf, np.ndarray) and buf.flags.c_contiguous, "MPI gets host buffers"
        buf += buf.dtype.type(1)                        # root's values differ from ours


def _reduced_grads(device, monkeypatch, reduce=True, **kwargs):
    from types import SimpleNamespace

    from engine import distributed as dist

    monkeypatch.setattr(dist, "_mpi", lambda: SimpleNamespace(IN_PLACE="in place", SUM="sum",
                                                             MAX="max", MIN="min"))
    monkeypatch.setattr(dist._World, "comm", _TwoRanks())
    monkeypatch.setattr(dist._World, "size", 2)
    monkeypatch.setattr(dist._World, "nccl", None)
    engine.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 2).double(), nn.Linear(3, 3))
    model.to(device)
    x = engine.randn(4, 3, device=device)
    model[1](model[0](x).double()).sum().backward()        # model[2] gets no gradient
    if reduce:
        dist.allreduce_gradients(model.parameters(), bucket_bytes=64, **kwargs)
    return model


@pytest.mark.parametrize("num_samples", [None, 3])
def test_allreduce_gradients_packs_device_buckets(cuda, monkeypatch, num_samples):
    cpu = _reduced_grads("cpu", monkeypatch, num_samples=num_samples)
    gpu = _reduced_grads("cuda", monkeypatch, num_samples=num_samples)
    for (name, a), b in zip(cpu.named_parameters(), gpu.parameters()):
        assert_same(a.grad, b.grad, f"{name} grad", rtol=0, atol=0)
        assert b.grad.dtype == b.dtype
    # (g + 3g) / 2 ranks; weighted: (3 g + 3 · 3g) / (3 + 9) samples
    factor = 2.0 if num_samples is None else 1.0
    plain = _reduced_grads("cpu", monkeypatch, reduce=False)
    for (name, a), b in zip(gpu.named_parameters(), plain.parameters()):
        want = np.zeros(a.shape) if b.grad is None else factor * b.grad.numpy()
        np.testing.assert_allclose(a.grad.numpy(), want, rtol=1e-6, err_msg=name)


def test_splits_of_device_data_stay_on_the_device(cuda):
    from data import random_split, train_test_split

    x = np.arange(24, dtype=np.float32).reshape(12, 2)
    y = np.array([0, 1, 2] * 4)
    parts = {}
    for device in ("cpu", "cuda"):
        xt, yt = engine.tensor(x, device=device), engine.tensor(y, device=device)
        parts[device] = train_test_split(xt, yt.data, test_size=0.25, stratify=yt, seed=0)
    for a, b in zip(parts["cpu"], parts["cuda"]):
        a, b = (t if isinstance(t, Tensor) else Tensor._make(t, None, 0) for t in (a, b))
        assert_same(a, b, "split", rtol=0, atol=0)
    ds = TensorDataset(engine.tensor(x, device="cuda"), engine.tensor(y, device="cuda"))
    train, test = random_split(ds, [0.75, 0.25], seed=1)
    for loader in (DataLoader(train, batch_size=4, shuffle=True),
                   DataLoader(test, batch_size=2, collate_fn=lambda b: b)):
        for batch in loader:
            for t in leaves(batch):
                on_gpu(t)


def test_broadcast_parameters_keeps_them_on_the_device(cuda, monkeypatch):
    from engine import distributed as dist

    monkeypatch.setattr(dist._World, "comm", _TwoRanks())
    engine.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).to("cuda")
    before = [t.numpy() for t in model.state_dict().values()]
    dist.broadcast_parameters(model)
    for t, b in zip(model.state_dict().values(), before):
        on_gpu(t)
        np.testing.assert_array_equal(t.numpy(), b + 1)
