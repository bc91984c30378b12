"""LSTMCell and LSTM: shapes, layout, float64 gradient checks of the whole module, the fused
step against the literal formulas, errors."""

import math

import numpy as np
import pytest

import engine
import nn


def _t(shape, seed, requires_grad=True, scale=1.0):
    rng = np.random.default_rng(seed)
    return engine.tensor(scale * rng.standard_normal(shape), dtype=np.float64,
                         requires_grad=requires_grad)


def _lstm_numpy(x, h, c, W_ih, W_hh, b_ih, b_hh):
    """One step in plain NumPy, gates i, f, g, o (the documented layout)."""
    a = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
    H = h.shape[-1]
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))
    i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), \
        sig(a[:, 3 * H:])
    c = f * c + i * g
    return o * np.tanh(c), c


# ------------------------------------------------------------------ construction
def test_lstm_parameters_names_shapes_and_init():
    m = nn.LSTM(5, 3, num_layers=2, bidirectional=True)
    names = [(k, v.shape) for k, v in m.state_dict().items()]
    expected = []
    for layer, n_in in ((0, 5), (1, 6)):
        for sfx in (f"_l{layer}", f"_l{layer}_reverse"):
            expected += [("weight_ih" + sfx, (12, n_in)), ("weight_hh" + sfx, (12, 3)),
                         ("bias_ih" + sfx, (12,)), ("bias_hh" + sfx, (12,))]
    assert names == expected
    bound = 1 / math.sqrt(3)
    for p in m.parameters():
        assert p.dtype == np.float32 and p.requires_grad
        assert np.abs(p.numpy()).max() <= bound
    allw = np.concatenate([p.numpy().ravel() for p in m.parameters()])
    assert allw.std() > 0.5 * bound / math.sqrt(3)       # U(-k, k) has std k/√3


def test_lstm_without_bias_and_cell_keys():
    m = nn.LSTM(4, 2, bias=False)
    assert list(m.state_dict()) == ["weight_ih_l0", "weight_hh_l0"]
    cell = nn.LSTMCell(4, 2)
    assert [(k, v.shape) for k, v in cell.state_dict().items()] == [
        ("weight_ih", (8, 4)), ("weight_hh", (8, 2)), ("bias_ih", (8,)), ("bias_hh", (8,))]
    assert list(nn.LSTMCell(4, 2, bias=False).state_dict()) == ["weight_ih", "weight_hh"]


def test_dtype_argument_and_reset_parameters():
    m = nn.LSTM(3, 2, num_layers=2, dtype=np.float64)
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert nn.LSTMCell(3, 2, dtype=np.float64).weight_hh.dtype == np.float64
    before = [p.numpy() for p in m.parameters()]
    engine.manual_seed(4)
    m.reset_parameters()
    after = [p.numpy() for p in m.parameters()]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))
    assert all(np.abs(a).max() <= 1 / math.sqrt(2) for a in after)


def test_same_seed_same_weights():
    engine.manual_seed(3)
    a = nn.LSTM(3, 4).state_dict()
    engine.manual_seed(3)
    b = nn.LSTM(3, 4).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())


# ------------------------------------------------------------------ values
def test_cell_matches_numpy_formula(path):
    cell = nn.LSTMCell(3, 4).double()
    x, h, c = _t((2, 3), 1), _t((2, 4), 2), _t((2, 4), 3)
    h1, c1 = cell(x, (h, c))
    ref_h, ref_c = _lstm_numpy(x.numpy(), h.numpy(), c.numpy(),
                               *(p.numpy() for p in cell.parameters()))
    np.testing.assert_allclose(h1.numpy(), ref_h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c1.numpy(), ref_c, rtol=1e-12, atol=1e-14)
    assert type(h1.grad_fn).__name__ == ("LSTMCellFunction" if path == "fused" else "Mul")


def test_lstm_matches_numpy_loop_bidirectional_two_layers(path):
    m = nn.LSTM(3, 2, num_layers=2, bidirectional=True).double()
    x = _t((4, 2, 3), 0)
    out, (h_n, c_n) = m(x)
    assert out.shape == (4, 2, 4) and h_n.shape == (4, 2, 2) and c_n.shape == (4, 2, 2)
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    inp = x.numpy()
    hs, cs = [], []
    for layer in range(2):
        outs = []
        for sfx, rev in ((f"_l{layer}", False), (f"_l{layer}_reverse", True)):
            h = c = np.zeros((2, 2))
            seq = np.zeros((4, 2, 2))
            for t in (range(3, -1, -1) if rev else range(4)):
                h, c = _lstm_numpy(inp[t], h, c, sd["weight_ih" + sfx], sd["weight_hh" + sfx],
                                   sd["bias_ih" + sfx], sd["bias_hh" + sfx])
                seq[t] = h
            outs.append(seq)
            hs.append(h)
            cs.append(c)
        inp = np.concatenate(outs, axis=-1)
    np.testing.assert_allclose(out.numpy(), inp, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n.numpy(), np.stack(hs), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c_n.numpy(), np.stack(cs), rtol=1e-12, atol=1e-14)


def test_batch_first_and_unbatched_agree_with_time_major():
    m = nn.LSTM(3, 2, num_layers=2)
    x = _t((5, 2, 3), 4, requires_grad=False).float()
    out, (h, c) = m(x)
    m.batch_first = True
    out_bf, (h_bf, c_bf) = m(x.swapaxes(0, 1))
    np.testing.assert_array_equal(out_bf.numpy(), out.numpy().swapaxes(0, 1))
    np.testing.assert_array_equal(h_bf.numpy(), h.numpy())
    m.batch_first = False
    out_u, (h_u, c_u) = m(x[:, 1])
    assert out_u.shape == (5, 2) and h_u.shape == (2, 2) and out_u.dtype == np.float32
    np.testing.assert_allclose(out_u.numpy(), out.numpy()[:, 1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(c_u.numpy(), c.numpy()[:, 1], rtol=1e-6, atol=1e-7)


def test_unbatched_cell():
    cell = nn.LSTMCell(3, 2)
    x = _t((3,), 0, requires_grad=False).float()
    h, c = cell(x)
    hb, cb = cell(x.reshape(1, 3))
    assert h.shape == (2,) and h.dtype == np.float32
    np.testing.assert_allclose(h.numpy(), hb.numpy()[0], rtol=1e-6)
    np.testing.assert_allclose(c.numpy(), cb.numpy()[0], rtol=1e-6)


def test_fused_and_reference_agree_float32():
    m = nn.LSTM(4, 3, num_layers=2, bidirectional=True, batch_first=True)
    x = _t((2, 5, 4), 7).float().detach().requires_grad_()
    u = np.random.default_rng(1).standard_normal((2, 5, 6)).astype(np.float32)
    results = []
    for fused in (True, False):
        m.zero_grad()
        x.grad = None
        with engine.use_fused(fused):
            out, (h, c) = m(x)
        ((out * u).sum() + h.sum() + (c * c).sum()).backward()
        assert out.dtype == np.float32 and x.grad.dtype == np.float32
        results.append([out.numpy(), x.grad.numpy()] + [p.grad.numpy() for p in m.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_long_sequence_no_recursion():
    m = nn.LSTM(2, 2)
    x = engine.randn(3000, 1, 2)
    out, (h, _) = m(x)
    out.sum().backward()
    assert m.weight_hh_l0.grad is not None and np.isfinite(m.weight_hh_l0.grad.numpy()).all()


# ------------------------------------------------------------------ gradient checks
def _flat(m):
    """``(x[, h0, c0]) -> (output, h_n, c_n)`` for gradcheck."""
    def fn(x, *hx):
        out, (h, c) = m(x, tuple(hx) if hx else None)
        return out, h, c
    return fn


def test_gradcheck_cell(path):
    cell = nn.LSTMCell(3, 2).double()
    x, h, c = _t((2, 3), 1), _t((2, 2), 2), _t((2, 2), 3)
    engine.gradcheck(lambda x, h, c: cell(x, (h, c)), [x, h, c], params=cell)
    cell1 = nn.LSTMCell(3, 2, bias=False).double()
    engine.gradcheck(lambda x: cell1(x), [_t((3,), 4)], params=cell1)


@pytest.mark.parametrize("T", [1, 3, 6])
def test_gradcheck_lstm_sequence_lengths(path, T):
    m = nn.LSTM(3, 2).double()
    engine.gradcheck(_flat(m), [_t((T, 2, 3), T)], params=m)


def test_gradcheck_lstm_two_layers_bidirectional_initial_states(path):
    m = nn.LSTM(2, 2, num_layers=2, bidirectional=True).double()
    x, h0, c0 = _t((3, 2, 2), 0), _t((4, 2, 2), 1), _t((4, 2, 2), 2)
    engine.gradcheck(_flat(m), [x, h0, c0], params=m)


def test_gradcheck_lstm_batch_first_unbatched(path):
    m = nn.LSTM(2, 3, batch_first=True).double()
    engine.gradcheck(_flat(m), [_t((2, 4, 2), 5)], params=m)
    engine.gradcheck(_flat(m), [_t((4, 2), 6), _t((1, 3), 7), _t((1, 3), 8)], params=m)


def test_gradgradcheck_reference_cell():
    cell = nn.LSTMCell(2, 2).double()
    with engine.use_fused(False):
        engine.gradgradcheck(lambda x, h, c: cell(x, (h, c)), [_t((2, 2), 1), _t((2, 2), 2),
                                                               _t((2, 2), 3)])


def test_fused_is_first_order_only():
    cell = nn.LSTMCell(2, 2).double()
    x = _t((1, 2), 0)
    h, _ = cell(x)
    (g,) = engine.grad(h.sum(), [x], create_graph=False)
    assert g.shape == (1, 2)
    h, _ = cell(x)
    with pytest.raises(RuntimeError, match="LSTMCellFunction"):
        engine.grad(h.sum(), [x], create_graph=True)


# ------------------------------------------------------------------ dropout and modes
def test_dropout_between_layers():
    m = nn.LSTM(3, 4, num_layers=2, dropout=0.5)
    x = engine.randn(5, 2, 3)
    m.eval()
    ev, _ = m(x)
    ev2, _ = m(x)
    np.testing.assert_array_equal(ev.numpy(), ev2.numpy())
    m.train()
    engine.manual_seed(11)
    tr1, _ = m(x)
    engine.manual_seed(11)
    tr2, _ = m(x)
    np.testing.assert_array_equal(tr1.numpy(), tr2.numpy())
    assert not np.allclose(tr1.numpy(), ev.numpy())
    # with p = 1 the second layer sees only zeros
    m.dropout = 1.0
    out, _ = m(x)
    zero_in = nn.LSTM(4, 4)
    zero_in.load_state_dict({k.replace("_l1", "_l0"): v for k, v in m.state_dict().items()
                             if "_l1" in k})
    ref, _ = zero_in(engine.zeros(5, 2, 4))
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-6, atol=1e-7)


def test_dropout_single_layer_warns():
    with pytest.warns(UserWarning, match="num_layers=1"):
        nn.LSTM(2, 2, dropout=0.2)


# ------------------------------------------------------------------ errors
def test_errors_name_shapes():
    m = nn.LSTM(3, 2)
    with pytest.raises(ValueError, match=r"LSTM: expected input .*3\).*got \(4, 2, 5\)"):
        m(engine.randn(4, 2, 5))
    with pytest.raises(ValueError, match=r"h_0 and c_0 of shape \(1, 2, 2\)"):
        m(engine.randn(4, 2, 3), (engine.zeros(1, 3, 2), engine.zeros(1, 3, 2)))
    with pytest.raises(TypeError, match="float64 does not match the parameters' dtype float32"):
        m(engine.randn(4, 2, 3, dtype=np.float64))
    with pytest.raises(ValueError, match="dropout must be a number in"):
        nn.LSTM(3, 2, dropout=1.5)
    cell = nn.LSTMCell(3, 2)
    with pytest.raises(ValueError, match=r"LSTMCell: expected h and c of shape \(4, 2\)"):
        cell(engine.randn(4, 3), (engine.zeros(4, 3), engine.zeros(4, 3)))
    with pytest.raises(ValueError, match=r"LSTMCell: expected input of shape \(batch, 3\)"):
        cell(engine.randn(4, 2))


# ------------------------------------------------------------------ devices
def test_lstm_on_device_matches_cpu(device):
    m = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    x = engine.randn(2, 5, 3)
    out, (h, c) = m(x)
    (out.sum() + (h * c).sum()).backward()
    ref = [out.numpy(), h.numpy()] + [p.grad.numpy() for p in m.parameters()]
    m.zero_grad()
    m.to(device)
    out, (h, c) = m(x.to(device))
    assert out.device == engine.backend.parse_device(device)
    (out.sum() + (h * c).sum()).backward()
    got = [out.numpy(), h.numpy()] + [p.grad.numpy() for p in m.parameters()]
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
