"""MultiheadAttention and the functional attention: values against a NumPy reference,
masks, fully masked rows, float64 gradient checks of the whole module, errors."""

import numpy as np
import pytest

import engine
import nn
import nn.functional as F


def _t(shape, seed, requires_grad=True):
    rng = np.random.default_rng(seed)
    return engine.tensor(rng.standard_normal(shape), dtype=np.float64,
                         requires_grad=requires_grad)


def _mha_numpy(m, query, key, value, allowed=None, bias=None):
    """Multi-head attention in plain NumPy (time-major), from the module's parameters.
    ``allowed`` (N, h, L, S) bool or None; ``bias`` added to the scores."""
    E, h = m.embed_dim, m.num_heads
    d = E // h
    W, b = m.in_proj_weight.numpy(), m.in_proj_bias.numpy()
    q = query @ W[:E].T + b[:E]
    k = key @ W[E:2 * E].T + b[E:2 * E]
    v = value @ W[2 * E:].T + b[2 * E:]
    L, N, _ = q.shape
    S = k.shape[0]
    q = q.reshape(L, N, h, d).transpose(1, 2, 0, 3)
    k = k.reshape(S, N, h, d).transpose(1, 2, 0, 3)
    v = v.reshape(S, N, h, d).transpose(1, 2, 0, 3)
    s = q @ k.swapaxes(-1, -2) / np.sqrt(d)
    if bias is not None:
        s = s + bias
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)
    m_ = s.max(-1, keepdims=True)
    m_ = np.where(np.isfinite(m_), m_, 0.0)
    e = np.exp(s - m_)
    z = e.sum(-1, keepdims=True)
    p = e / np.where(z > 0, z, 1.0)
    out = (p @ v).transpose(2, 0, 1, 3).reshape(L, N, E)
    out = out @ m.out_proj.weight.numpy().T + m.out_proj.bias.numpy()
    return out, p


# ------------------------------------------------------------------ construction
def test_parameters_names_shapes_init():
    m = nn.MultiheadAttention(8, 2)
    assert [(k, v.shape) for k, v in m.state_dict().items()] == [
        ("in_proj_weight", (24, 8)), ("in_proj_bias", (24,)),
        ("out_proj.weight", (8, 8)), ("out_proj.bias", (8,))]
    assert np.all(m.in_proj_bias.numpy() == 0) and np.all(m.out_proj.bias.numpy() == 0)
    bound = np.sqrt(6.0 / (8 + 24))                       # xavier_uniform_ on (3E, E)
    w = m.in_proj_weight.numpy()
    assert np.abs(w).max() <= bound and w.std() > 0.4 * bound and w.dtype == np.float32
    sep = nn.MultiheadAttention(8, 4, kdim=3, vdim=5, bias=False)
    assert [(k, v.shape) for k, v in sep.state_dict().items()] == [
        ("q_proj_weight", (8, 8)), ("k_proj_weight", (8, 3)), ("v_proj_weight", (8, 5)),
        ("out_proj.weight", (8, 8))]


def test_constructor_errors():
    with pytest.raises(ValueError, match="embed_dim 6 must be divisible by num_heads 4"):
        nn.MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match="add_bias_kv=True and add_zero_attn=True are not"):
        nn.MultiheadAttention(4, 2, add_bias_kv=True)


# ------------------------------------------------------------------ values and masks
def test_self_attention_matches_numpy(path):
    m = nn.MultiheadAttention(6, 3).double()
    x = _t((4, 2, 6), 0, requires_grad=False)
    out, w = m(x, x, x)
    ref, p = _mha_numpy(m, x.numpy(), x.numpy(), x.numpy())
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(w.numpy(), p.mean(axis=1), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(w.numpy().sum(-1), 1.0, rtol=1e-12)
    out2, w2 = m(x, x, x, need_weights=False)
    assert w2 is None
    np.testing.assert_allclose(out2.numpy(), ref, rtol=1e-12, atol=1e-13)
    _, w3 = m(x, x, x, average_attn_weights=False)
    assert w3.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(w3.numpy(), p, rtol=1e-12, atol=1e-14)


def test_cross_attention_and_separate_value(path):
    m = nn.MultiheadAttention(4, 2).double()
    q, kv, v = (_t(s, i, requires_grad=False) for i, s in
                enumerate([(3, 2, 4), (5, 2, 4), (5, 2, 4)]))
    for key, value in ((kv, kv), (kv, v)):
        out, w = m(q, key, value)
        ref, p = _mha_numpy(m, q.numpy(), key.numpy(), value.numpy())
        assert out.shape == (3, 2, 4) and w.shape == (2, 3, 5)
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-13)


def test_masks_bool_float_causal_padding(path):
    m = nn.MultiheadAttention(4, 2).double()
    x = _t((4, 3, 4), 1, requires_grad=False)
    causal_bool = np.triu(np.ones((4, 4), dtype=bool), k=1)          # True = NOT allowed
    causal_float = nn.Transformer.generate_square_subsequent_mask(4, dtype=np.float64)
    kpm = np.zeros((3, 4), dtype=bool)
    kpm[1, 2:] = True                                                 # True = padding
    allowed = ~causal_bool[None, None] & ~kpm[:, None, None, :]
    ref, p = _mha_numpy(m, x.numpy(), x.numpy(), x.numpy(), allowed=allowed)
    for kwargs in (dict(attn_mask=causal_bool), dict(attn_mask=causal_float),
                   dict(attn_mask=engine.tensor(causal_bool)), dict(is_causal=True),
                   dict(attn_mask=causal_bool, is_causal=True)):
        out, w = m(x, x, x, key_padding_mask=kpm, **kwargs)
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(w.numpy(), p.mean(axis=1), rtol=1e-12, atol=1e-14)
    assert np.all(w.numpy()[1, :, 2:] == 0)                          # padding keys get 0
    # a float key padding mask is added to the scores
    fk = np.where(kpm, -1e4, 0.0)
    out, _ = m(x, x, x, key_padding_mask=fk)
    ref, _ = _mha_numpy(m, x.numpy(), x.numpy(), x.numpy(), bias=fk[:, None, None, :])
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-13)


def test_3d_attn_mask_per_head(path):
    m = nn.MultiheadAttention(4, 2).double()
    x = _t((3, 2, 4), 2, requires_grad=False)
    bias = np.random.default_rng(0).standard_normal((2 * 2, 3, 3))   # (N·h, L, S)
    out, w = m(x, x, x, attn_mask=bias, average_attn_weights=False)
    ref, p = _mha_numpy(m, x.numpy(), x.numpy(), x.numpy(), bias=bias.reshape(2, 2, 3, 3))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(w.numpy(), p, rtol=1e-12, atol=1e-14)


def test_fully_masked_rows_give_zeros_not_nan(path):
    """A query that may attend to no key: weights 0, output out_proj.bias (PyTorch: NaN)."""
    m = nn.MultiheadAttention(4, 2).double()
    with engine.no_grad():
        m.out_proj.bias.data[...] = np.arange(4.0)
    x = _t((3, 2, 4), 3)
    mask = np.zeros((3, 3), dtype=bool)
    mask[1] = True                                   # query 1 sees nothing
    kpm = np.zeros((2, 3), dtype=bool)
    kpm[0] = True                                    # batch entry 0: every key is padding
    out, w = m(x, x, x, attn_mask=mask, key_padding_mask=kpm)
    assert np.isfinite(out.numpy()).all() and np.isfinite(w.numpy()).all()
    np.testing.assert_array_equal(out.numpy()[1], np.broadcast_to(np.arange(4.0), (2, 4)))
    np.testing.assert_array_equal(out.numpy()[:, 0], np.broadcast_to(np.arange(4.0), (3, 4)))
    assert np.all(w.numpy()[0] == 0) and np.all(w.numpy()[:, 1] == 0)
    np.testing.assert_allclose(w.numpy()[1, [0, 2]].sum(-1), 1.0)
    out.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    engine.gradcheck(lambda x: m(x, x, x, attn_mask=mask, key_padding_mask=kpm),
                     [x], params=m)


def test_batch_first_and_unbatched(path):
    m = nn.MultiheadAttention(4, 2).double()
    x = _t((3, 2, 4), 4, requires_grad=False)
    kpm = np.array([[False, False, True], [False, False, False]])
    out, w = m(x, x, x, key_padding_mask=kpm)
    m.batch_first = True
    xb = x.swapaxes(0, 1)
    out_b, w_b = m(xb, xb, xb, key_padding_mask=kpm)
    np.testing.assert_allclose(out_b.numpy(), out.numpy().swapaxes(0, 1), rtol=1e-13)
    np.testing.assert_allclose(w_b.numpy(), w.numpy(), rtol=1e-13)
    m.batch_first = False
    x1 = x[:, 0]
    out_u, w_u = m(x1, x1, x1, key_padding_mask=kpm[0])
    assert out_u.shape == (3, 4) and w_u.shape == (3, 3)
    np.testing.assert_allclose(out_u.numpy(), out.numpy()[:, 0], rtol=1e-12)
    np.testing.assert_allclose(w_u.numpy(), w.numpy()[0], rtol=1e-12)


def test_float32_stays_float32():
    m = nn.MultiheadAttention(4, 2)
    x = engine.randn(3, 2, 4, requires_grad=True)
    out, w = m(x, x, x, attn_mask=nn.Transformer.generate_square_subsequent_mask(3))
    assert out.dtype == np.float32 and w.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32 and m.in_proj_weight.grad.dtype == np.float32


def test_dropout_train_eval_and_seed():
    m = nn.MultiheadAttention(4, 2, dropout=0.5)
    x = engine.randn(5, 2, 4)
    engine.manual_seed(1)
    a, _ = m(x, x, x)
    engine.manual_seed(1)
    b, _ = m(x, x, x)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    m.eval()
    c, _ = m(x, x, x)
    d, _ = m(x, x, x)
    np.testing.assert_array_equal(c.numpy(), d.numpy())
    assert not np.allclose(a.numpy(), c.numpy())


def test_functional_sdpa_pytorch_mask_convention():
    """F.scaled_dot_product_attention: bool True = takes part (the opposite of MHA's)."""
    q, k, v = _t((2, 3, 4), 0), _t((2, 5, 4), 1), _t((2, 5, 2), 2)
    allowed = np.random.default_rng(0).random((3, 5)) > 0.3
    allowed[:, 0] = True
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    s = q.numpy() @ k.numpy().swapaxes(-1, -2) / 2.0
    s = np.where(allowed, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(out.numpy(), p @ v.numpy(), rtol=1e-12)
    engine.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                     scale=0.3), [q, k, v])


# ------------------------------------------------------------------ gradient checks
def test_gradcheck_self_attention_causal_padding(path):
    m = nn.MultiheadAttention(4, 2).double()
    kpm = np.array([[False, False, True], [False, False, False]])
    engine.gradcheck(lambda x: m(x, x, x, key_padding_mask=kpm, is_causal=True),
                     [_t((3, 2, 4), 5)], params=m)


def test_gradcheck_cross_attention_float_mask_no_weights(path):
    m = nn.MultiheadAttention(4, 2, batch_first=True).double()
    bias = np.random.default_rng(1).standard_normal((3, 4))
    engine.gradcheck(lambda q, kv: m(q, kv, kv, attn_mask=bias, need_weights=False)[0],
                     [_t((2, 3, 4), 6), _t((2, 4, 4), 7)], params=m)


def test_gradcheck_separate_projections_per_head_weights(path):
    m = nn.MultiheadAttention(4, 2, kdim=3, vdim=2).double()
    engine.gradcheck(lambda q, k, v: m(q, k, v, average_attn_weights=False),
                     [_t((2, 2, 4), 8), _t((3, 2, 3), 9), _t((3, 2, 2), 10)], params=m)


def test_gradcheck_learned_float_mask():
    """A float attn_mask that requires grad receives its gradient."""
    m = nn.MultiheadAttention(4, 2).double()
    x = _t((3, 1, 4), 11, requires_grad=False)
    engine.gradcheck(lambda b: m(x, x, x, attn_mask=b)[0], [_t((3, 3), 12)])


# ------------------------------------------------------------------ errors
def test_forward_errors_name_shapes():
    m = nn.MultiheadAttention(4, 2)
    x = engine.randn(3, 2, 4)
    with pytest.raises(ValueError, match=r"2-D attn_mask is \(3, 4\), but should be \(3, 3\)"):
        m(x, x, x, attn_mask=np.zeros((3, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"3-D attn_mask is \(2, 3, 3\), but should be "
                                         r"\(4, 3, 3\)"):
        m(x, x, x, attn_mask=np.zeros((2, 3, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(2, 3\), got \(3, 2\)"):
        m(x, x, x, key_padding_mask=np.zeros((3, 2), dtype=bool))
    with pytest.raises(TypeError, match="only bool and floating types of attn_mask"):
        m(x, x, x, attn_mask=np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(TypeError, match="attn_mask is float64 but the query is float32"):
        m(x, x, x, attn_mask=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"embed_dim 4, got query of shape \(3, 2, 5\)"):
        m(engine.randn(3, 2, 5), x, x)
    with pytest.raises(ValueError, match=r"must share \(seq, batch\)"):
        m(x, engine.randn(3, 1, 4), engine.randn(3, 1, 4))
