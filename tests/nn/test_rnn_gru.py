"""GRU, RNN, GRUCell and RNNCell: parameters and init, the step formulas against NumPy,
float64 gradient checks of whole layers, layouts, dropout, errors."""

import math

import numpy as np
import pytest

import engine
import nn


def _t(shape, seed, requires_grad=True, scale=1.0):
    rng = np.random.default_rng(seed)
    return engine.tensor(scale * rng.standard_normal(shape), dtype=np.float64,
                         requires_grad=requires_grad)


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _gru_numpy(x, h, W_ih, W_hh, b_ih, b_hh):
    """One GRU step in NumPy, gates r, z, n (PyTorch's layout)."""
    H = h.shape[-1]
    xa, ha = x @ W_ih.T + b_ih, h @ W_hh.T + b_hh
    r = _sig(xa[:, :H] + ha[:, :H])
    z = _sig(xa[:, H:2 * H] + ha[:, H:2 * H])
    n = np.tanh(xa[:, 2 * H:] + r * ha[:, 2 * H:])
    return (1 - z) * n + z * h


def _rnn_numpy(x, h, W_ih, W_hh, b_ih, b_hh, relu=False):
    a = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
    return np.maximum(a, 0) if relu else np.tanh(a)


MODES = {"GRU": (nn.GRU, _gru_numpy, 3), "RNN": (nn.RNN, _rnn_numpy, 1),
         "RNN_RELU": (lambda *a, **k: nn.RNN(*a, nonlinearity="relu", **k),
                      lambda *a: _rnn_numpy(*a, relu=True), 1)}


# ------------------------------------------------------------------ construction
@pytest.mark.parametrize("mode", list(MODES))
def test_parameters_names_shapes_and_init(mode):
    make, _, G = MODES[mode]
    m = make(5, 3, num_layers=2, bidirectional=True)
    expected = []
    for layer, n_in in ((0, 5), (1, 6)):
        for sfx in (f"_l{layer}", f"_l{layer}_reverse"):
            expected += [("weight_ih" + sfx, (G * 3, n_in)), ("weight_hh" + sfx, (G * 3, 3)),
                         ("bias_ih" + sfx, (G * 3,)), ("bias_hh" + sfx, (G * 3,))]
    assert [(k, v.shape) for k, v in m.state_dict().items()] == expected
    bound = 1 / math.sqrt(3)
    allw = np.concatenate([p.numpy().ravel() for p in m.parameters()])
    assert allw.dtype == np.float32 and np.abs(allw).max() <= bound
    assert allw.std() > 0.5 * bound / math.sqrt(3)
    assert list(make(4, 2, bias=False).state_dict()) == ["weight_ih_l0", "weight_hh_l0"]


def test_cells_keys_and_reprs():
    for cls, G in ((nn.GRUCell, 3), (nn.RNNCell, 1)):
        cell = cls(4, 2)
        assert [(k, v.shape) for k, v in cell.state_dict().items()] == [
            ("weight_ih", (2 * G, 4)), ("weight_hh", (2 * G, 2)), ("bias_ih", (2 * G,)),
            ("bias_hh", (2 * G,))]
        assert list(cls(4, 2, bias=False).state_dict()) == ["weight_ih", "weight_hh"]
    assert repr(nn.RNNCell(3, 2, nonlinearity="relu")) == \
        "RNNCell(3, 2, nonlinearity='relu')"
    assert repr(nn.GRU(3, 2, 2, batch_first=True)) == "GRU(3, 2, num_layers=2, batch_first=True)"
    assert repr(nn.RNN(3, 2, 1, "relu", False)) == "RNN(3, 2, nonlinearity='relu', bias=False)"
    assert nn.RNN(3, 2).nonlinearity == "tanh" and nn.GRU(3, 2).mode == "GRU"


def test_same_seed_same_weights_and_dtype():
    engine.manual_seed(3)
    a = nn.GRU(3, 4).state_dict()
    engine.manual_seed(3)
    b = nn.GRU(3, 4).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())
    assert all(p.dtype == np.float64 for p in nn.RNN(3, 2, dtype=np.float64).parameters())


# ------------------------------------------------------------------ values
@pytest.mark.parametrize("mode", list(MODES))
def test_layers_match_numpy_loop_two_layers_bidirectional(mode):
    make, step, _ = MODES[mode]
    m = make(3, 2, num_layers=2, bidirectional=True).double()
    x, h0 = _t((4, 2, 3), 0), _t((4, 2, 2), 1)
    out, h_n = m(x, h0)
    assert out.shape == (4, 2, 4) and h_n.shape == (4, 2, 2)
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    inp, finals = x.numpy(), []
    for layer in range(2):
        outs = []
        for d, (sfx, rev) in enumerate(((f"_l{layer}", False), (f"_l{layer}_reverse", True))):
            h = h0.numpy()[2 * layer + d]
            seq = np.zeros((4, 2, 2))
            for t in (range(3, -1, -1) if rev else range(4)):
                h = step(inp[t], h, sd["weight_ih" + sfx], sd["weight_hh" + sfx],
                         sd["bias_ih" + sfx], sd["bias_hh" + sfx])
                seq[t] = h
            outs.append(seq)
            finals.append(h)
        inp = np.concatenate(outs, axis=-1)
    np.testing.assert_allclose(out.numpy(), inp, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n.numpy(), np.stack(finals), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls,step,kw", [(nn.GRUCell, _gru_numpy, {}),
                                         (nn.RNNCell, _rnn_numpy, {}),
                                         (nn.RNNCell, lambda *a: _rnn_numpy(*a, relu=True),
                                          {"nonlinearity": "relu"})])
def test_cells_match_numpy_and_unbatched(cls, step, kw):
    cell = cls(3, 4, **kw).double()
    x, h = _t((2, 3), 1), _t((2, 4), 2)
    ref = step(x.numpy(), h.numpy(), *(p.numpy() for p in cell.parameters()))
    np.testing.assert_allclose(cell(x, h).numpy(), ref, rtol=1e-12, atol=1e-14)
    zero = step(x.numpy(), np.zeros((2, 4)), *(p.numpy() for p in cell.parameters()))
    np.testing.assert_allclose(cell(x).numpy(), zero, rtol=1e-12, atol=1e-14)
    one = cell(x[0], h[0])
    assert one.shape == (4,)
    np.testing.assert_allclose(one.numpy(), ref[0], rtol=1e-12, atol=1e-14)


def test_batch_first_and_unbatched_agree_with_time_major():
    m = nn.GRU(3, 2, num_layers=2)
    x = _t((5, 2, 3), 4, requires_grad=False).float()
    out, h = m(x)
    m.batch_first = True
    out_bf, h_bf = m(x.swapaxes(0, 1))
    np.testing.assert_array_equal(out_bf.numpy(), out.numpy().swapaxes(0, 1))
    np.testing.assert_array_equal(h_bf.numpy(), h.numpy())
    m.batch_first = False
    out_u, h_u = m(x[:, 1])
    assert out_u.shape == (5, 2) and h_u.shape == (2, 2) and out_u.dtype == np.float32
    np.testing.assert_allclose(out_u.numpy(), out.numpy()[:, 1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h_u.numpy(), h.numpy()[:, 1], rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------ gradient checks
def _flat(m):
    def fn(x, *h0):
        out, h = m(x, h0[0] if h0 else None)
        return out, h
    return fn


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("T", [1, 4])
def test_gradcheck_layers(mode, T):
    m = MODES[mode][0](3, 2).double()
    engine.gradcheck(_flat(m), [_t((T, 2, 3), T, scale=0.5)], params=m)


@pytest.mark.parametrize("mode", list(MODES))
def test_gradcheck_two_layers_bidirectional_initial_state(mode):
    m = MODES[mode][0](2, 2, num_layers=2, bidirectional=True).double()
    engine.gradcheck(_flat(m), [_t((3, 2, 2), 0, scale=0.5), _t((4, 2, 2), 1)], params=m)


def test_gradcheck_batch_first_unbatched_no_bias_and_cells():
    m = nn.GRU(2, 3, batch_first=True, bias=False).double()
    engine.gradcheck(_flat(m), [_t((2, 4, 2), 5)], params=m)
    engine.gradcheck(_flat(m), [_t((4, 2), 6), _t((1, 3), 7)], params=m)
    for cell in (nn.GRUCell(3, 2).double(), nn.RNNCell(3, 2, nonlinearity="relu").double()):
        engine.gradcheck(cell, [_t((2, 3), 1), _t((2, 2), 2)])


def test_gradgradcheck_gru_cell():
    cell = nn.GRUCell(2, 2).double()
    engine.gradgradcheck(lambda x, h: cell(x, h), [_t((2, 2), 1), _t((2, 2), 2)])


# ------------------------------------------------------------------ dropout, errors
def test_dropout_between_layers_and_single_layer_warning():
    m = nn.GRU(3, 4, num_layers=2, dropout=0.5)
    x = engine.randn(5, 2, 3)
    m.eval()
    ev, _ = m(x)
    m.train()
    engine.manual_seed(11)
    tr1, _ = m(x)
    engine.manual_seed(11)
    tr2, _ = m(x)
    np.testing.assert_array_equal(tr1.numpy(), tr2.numpy())
    assert not np.allclose(tr1.numpy(), ev.numpy())
    with pytest.warns(UserWarning, match="RNN: dropout=0.2 and num_layers=1"):
        nn.RNN(2, 2, dropout=0.2)


def test_errors_name_the_layer_and_shapes():
    m = nn.GRU(3, 2)
    with pytest.raises(ValueError, match=r"GRU: expected input .*3\).*got \(4, 2, 5\)"):
        m(engine.randn(4, 2, 5))
    with pytest.raises(ValueError, match=r"GRU: expected h_0 of shape \(1, 2, 2\), got "
                                         r"\(1, 3, 2\)"):
        m(engine.randn(4, 2, 3), engine.zeros(1, 3, 2))
    with pytest.raises(TypeError, match="RNN: input dtype float64 does not match"):
        nn.RNN(3, 2)(engine.randn(4, 2, 3, dtype=np.float64))
    with pytest.raises(ValueError, match="RNN: unknown nonlinearity 'gelu'"):
        nn.RNN(3, 2, nonlinearity="gelu")
    with pytest.raises(ValueError, match="RNNCell: unknown nonlinearity 'sigmoid'"):
        nn.RNNCell(3, 2, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"GRUCell: expected h of shape \(4, 2\)"):
        nn.GRUCell(3, 2)(engine.randn(4, 3), engine.zeros(4, 3))
    with pytest.raises(ValueError, match="GRU: the input sequence is empty"):
        m(engine.randn(0, 2, 3))
    with pytest.raises(ValueError, match="GRU: input_size, hidden_size and num_layers"):
        nn.GRU(3, 0)


# ------------------------------------------------------------------ devices
@pytest.mark.parametrize("mode", ["GRU", "RNN_RELU"])
def test_on_device_matches_cpu(device, mode):
    m = MODES[mode][0](3, 4, num_layers=2, bidirectional=True, batch_first=True)
    x = engine.randn(2, 5, 3)
    out, h = m(x)
    (out.sum() + (h * h).sum()).backward()
    ref = [out.numpy(), h.numpy()] + [p.grad.numpy() for p in m.parameters()]
    m.zero_grad()
    m.to(device)
    out, h = m(x.to(device))
    (out.sum() + (h * h).sum()).backward()
    got = [out.numpy(), h.numpy()] + [p.grad.numpy() for p in m.parameters()]
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
