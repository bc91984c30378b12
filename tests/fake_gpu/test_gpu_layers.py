"""The CUDA code path on a fake CuPy: every layer and loss gives the CPU's outputs and
gradients on the device, in training and evaluation; host masks and targets are refused."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import engine
import losses
import nn
from engine import Tensor

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from gpu_checks import (  # noqa: E402
    _host_inputs, assert_same, backward, leaves, on_gpu, to, upstream,
)


# ----------------------------------------------------------------------------- nn layers
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
        engine.manual_seed(seed + 1 + step)          # the same masks (host_dropout_masks)
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
def test_layer_forward_backward_on_device(cuda, host_dropout_masks, name):
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
