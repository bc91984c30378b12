"""The recurrent layers and cells against PyTorch: same weights, same outputs and gradients."""

import numpy as np
import pytest

import engine
import nn

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


def _copy_weights(ours, theirs):
    """Load PyTorch's state dict into ours as plain arrays; keys and shapes must agree."""
    sd = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, v.shape) for k, v in sd.items()]
    ours.load_state_dict(sd)


def _compare(ours, theirs, inputs, dtype, unpack):
    """Run both on the same inputs, backprop the same random upstream gradients, compare
    outputs, input gradients and parameter gradients."""
    tol = TOL[dtype]
    xs = [engine.tensor(a, dtype=dtype, requires_grad=True) for a in inputs]
    ts = [torch.tensor(a, dtype=TORCH_DTYPE[dtype], requires_grad=True) for a in inputs]
    outs, touts = unpack(ours, xs), unpack(theirs, ts)
    rng = np.random.default_rng(42)
    loss, tloss = 0.0, 0.0
    for o, t in zip(outs, touts):
        assert o.shape == tuple(t.shape) and o.dtype == dtype
        np.testing.assert_allclose(o.numpy(), t.detach().numpy(), **tol)
        u = rng.standard_normal(o.shape).astype(dtype)
        loss = loss + (o * engine.tensor(u)).sum()
        tloss = tloss + (t * torch.tensor(u)).sum()
    loss.backward()
    tloss.backward()
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), **tol)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad.dtype == dtype
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), **tol,
                                   err_msg=name)


def _lstm_unpack(with_state):
    def run(m, xs):
        out, (h, c) = m(xs[0], (xs[1], xs[2])) if with_state else m(xs[0])
        return out, h, c
    return run


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_lstm_cell_parity(dtype, fused, bias):
    torch.manual_seed(0)
    theirs = torch.nn.LSTMCell(4, 3, bias=bias).to(TORCH_DTYPE[dtype])
    ours = nn.LSTMCell(4, 3, bias=bias).to(dtype=dtype)
    _copy_weights(ours, theirs)
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal(s) for s in [(5, 4), (5, 3), (5, 3)]]
    with engine.use_fused(fused):
        _compare(ours, theirs, inputs, dtype,
                 lambda m, xs: m(xs[0], (xs[1], xs[2])))
        _compare(ours, theirs, inputs[:1], dtype, lambda m, xs: m(xs[0]))
        _compare(ours, theirs, [inputs[0][0]], dtype, lambda m, xs: m(xs[0]))


CONFIGS = [
    dict(num_layers=1),
    dict(num_layers=2),
    dict(num_layers=1, bidirectional=True),
    dict(num_layers=2, bidirectional=True, batch_first=True),
    dict(num_layers=2, bias=False),
    dict(num_layers=3, batch_first=True),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in
                                                                   c.items()))
@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_parity(dtype, config, with_state):
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(4, 3, **config).to(TORCH_DTYPE[dtype])
    ours = nn.LSTM(4, 3, **config).to(dtype=dtype)
    _copy_weights(ours, theirs)
    D = 2 if config.get("bidirectional") else 1
    L = config["num_layers"]
    rng = np.random.default_rng(1)
    x_shape = (2, 5, 4) if config.get("batch_first") else (5, 2, 4)
    inputs = [rng.standard_normal(x_shape)]
    if with_state:
        inputs += [rng.standard_normal((L * D, 2, 3)), rng.standard_normal((L * D, 2, 3))]
    _compare(ours, theirs, inputs, dtype, _lstm_unpack(with_state))


@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_unbatched_parity(with_state):
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(3, 2, num_layers=2, bidirectional=True).double()
    ours = nn.LSTM(3, 2, num_layers=2, bidirectional=True).double()
    _copy_weights(ours, theirs)
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal((6, 3))]
    if with_state:
        inputs += [rng.standard_normal((4, 2)), rng.standard_normal((4, 2))]
    _compare(ours, theirs, inputs, np.float64, _lstm_unpack(with_state))


def test_lstm_reference_path_parity_float64():
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(4, 3, num_layers=2, bidirectional=True).double()
    ours = nn.LSTM(4, 3, num_layers=2, bidirectional=True).double()
    _copy_weights(ours, theirs)
    inputs = [np.random.default_rng(3).standard_normal((4, 2, 4))]
    with engine.use_fused(False):
        _compare(ours, theirs, inputs, np.float64, _lstm_unpack(False))


def test_lstm_eval_with_dropout_matches_torch():
    """dropout acts only in training; in eval the outputs match PyTorch exactly."""
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(4, 3, num_layers=2, dropout=0.5).double().eval()
    ours = nn.LSTM(4, 3, num_layers=2, dropout=0.5).double().eval()
    _copy_weights(ours, theirs)
    inputs = [np.random.default_rng(4).standard_normal((5, 2, 4))]
    _compare(ours, theirs, inputs, np.float64, _lstm_unpack(False))


# ------------------------------------------------------------------ GRU and RNN
def _make_pair(kind, *args, **kwargs):
    """(ours, theirs) for kind GRU, RNN_TANH or RNN_RELU (layers or, with cell=True, cells)."""
    cell = kwargs.pop("cell", False)
    name = ("GRU" if kind == "GRU" else "RNN") + ("Cell" if cell else "")
    if kind != "GRU":
        kwargs["nonlinearity"] = "tanh" if kind == "RNN_TANH" else "relu"
    return getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)


KINDS = ["GRU", "RNN_TANH", "RNN_RELU"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in
                                                                   c.items()))
@pytest.mark.parametrize("with_state", [False, True])
def test_gru_rnn_parity(kind, dtype, config, with_state):
    torch.manual_seed(0)
    ours, theirs = _make_pair(kind, 4, 3, **config)
    ours, theirs = ours.to(dtype=dtype), theirs.to(TORCH_DTYPE[dtype])
    _copy_weights(ours, theirs)
    D = 2 if config.get("bidirectional") else 1
    rng = np.random.default_rng(1)
    x_shape = (2, 5, 4) if config.get("batch_first") else (5, 2, 4)
    inputs = [rng.standard_normal(x_shape)]
    if with_state:
        inputs.append(rng.standard_normal((config["num_layers"] * D, 2, 3)))
    _compare(ours, theirs, inputs, dtype,
             lambda m, xs: m(*xs) if with_state else m(xs[0]))


@pytest.mark.parametrize("kind", KINDS)
def test_gru_rnn_unbatched_parity_and_dropout_in_eval(kind):
    torch.manual_seed(0)
    ours, theirs = _make_pair(kind, 3, 2, num_layers=2, bidirectional=True, dropout=0.3)
    ours, theirs = ours.double().eval(), theirs.double().eval()
    _copy_weights(ours, theirs)
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal((6, 3)), rng.standard_normal((4, 2))]
    _compare(ours, theirs, inputs, np.float64, lambda m, xs: m(*xs))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
def test_gru_rnn_cell_parity(kind, dtype, bias):
    torch.manual_seed(0)
    ours, theirs = _make_pair(kind, 4, 3, bias=bias, cell=True)
    ours, theirs = ours.to(dtype=dtype), theirs.to(TORCH_DTYPE[dtype])
    _copy_weights(ours, theirs)
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((5, 4)), rng.standard_normal((5, 3))]
    _compare(ours, theirs, inputs, dtype, lambda m, xs: m(*xs))
    _compare(ours, theirs, inputs[:1], dtype, lambda m, xs: m(xs[0]))
    _compare(ours, theirs, [inputs[0][0], inputs[1][0]], dtype, lambda m, xs: m(*xs))

