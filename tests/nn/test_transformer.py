"""Transformer layers, stacks and the full model: structure and names, initialization,
wiring against a NumPy reference, float64 gradient checks, masks, positional encoding."""

import numpy as np
import pytest

import engine
import nn
import nn.functional as F


def _t(shape, seed, requires_grad=True):
    rng = np.random.default_rng(seed)
    return engine.tensor(rng.standard_normal(shape), dtype=np.float64,
                         requires_grad=requires_grad)


def _layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _self_attention(sd, prefix, x, h, allowed=None):
    """NumPy self-attention (time-major) from a state dict."""
    E = x.shape[-1]
    d = E // h
    W, b = sd[prefix + "in_proj_weight"], sd[prefix + "in_proj_bias"]
    L, N, _ = x.shape
    q, k, v = (((x @ W[i * E:(i + 1) * E].T + b[i * E:(i + 1) * E])
                .reshape(L, N, h, d).transpose(1, 2, 0, 3)) for i in range(3))
    s = q @ k.swapaxes(-1, -2) / np.sqrt(d)
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = (p @ v).transpose(2, 0, 1, 3).reshape(L, N, E)
    return o @ sd[prefix + "out_proj.weight"].T + sd[prefix + "out_proj.bias"]


ENCODER_LAYER_KEYS = [
    "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
    "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
    "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"]
DECODER_LAYER_KEYS = [
    "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
    "self_attn.out_proj.bias", "multihead_attn.in_proj_weight", "multihead_attn.in_proj_bias",
    "multihead_attn.out_proj.weight", "multihead_attn.out_proj.bias", "linear1.weight",
    "linear1.bias", "linear2.weight", "linear2.bias", "norm1.weight", "norm1.bias",
    "norm2.weight", "norm2.bias", "norm3.weight", "norm3.bias"]


# ------------------------------------------------------------------ structure
def test_layer_submodule_names_and_defaults():
    enc = nn.TransformerEncoderLayer(8, 2)
    assert list(enc.state_dict()) == ENCODER_LAYER_KEYS
    assert [n for n, _ in enc.named_children()] == [
        "self_attn", "linear1", "dropout", "linear2", "norm1", "norm2", "dropout1",
        "dropout2"]
    assert enc.linear1.weight.shape == (2048, 8) and enc.dropout.p == 0.1
    assert enc.norm1.eps == 1e-5 and not enc.norm_first and not enc.self_attn.batch_first
    dec = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
    assert list(dec.state_dict()) == DECODER_LAYER_KEYS
    assert [n for n, _ in dec.named_children()] == [
        "self_attn", "multihead_attn", "linear1", "dropout", "linear2", "norm1", "norm2",
        "norm3", "dropout1", "dropout2", "dropout3"]
    nb = nn.TransformerEncoderLayer(8, 2, 16, bias=False)
    assert all("bias" not in k for k in nb.state_dict())


def test_stacks_deep_copy_layers():
    layer = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0)
    enc = nn.TransformerEncoder(layer, 3, norm=nn.LayerNorm(4))
    keys = list(enc.state_dict())
    assert keys == [f"layers.{i}.{k}" for i in range(3) for k in ENCODER_LAYER_KEYS] + \
        ["norm.weight", "norm.bias"]
    a, b = enc.layers[0], enc.layers[1]
    assert a is not b and a is not layer and a.linear1.weight is not b.linear1.weight
    np.testing.assert_array_equal(a.linear1.weight.numpy(), layer.linear1.weight.numpy())
    with engine.no_grad():
        a.linear1.weight.data[...] = 0.0
    assert np.any(b.linear1.weight.numpy() != 0) and np.any(layer.linear1.weight.numpy() != 0)
    dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(4, 2, 8), 2)
    assert list(dec.state_dict()) == [f"layers.{i}.{k}" for i in range(2)
                                      for k in DECODER_LAYER_KEYS]


def test_transformer_keys_and_xavier_reset():
    m = nn.Transformer(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=1,
                       dim_feedforward=12)
    keys = list(m.state_dict())
    assert keys == ([f"encoder.layers.{i}.{k}" for i in range(2) for k in ENCODER_LAYER_KEYS]
                    + ["encoder.norm.weight", "encoder.norm.bias"]
                    + [f"decoder.layers.0.{k}" for k in DECODER_LAYER_KEYS]
                    + ["decoder.norm.weight", "decoder.norm.bias"])
    for name, p in m.named_parameters():
        assert p.dtype == np.float32
        if p.ndim > 1:
            bound = np.sqrt(6.0 / sum(p.shape))          # xavier_uniform_: fan_in + fan_out
            assert np.abs(p.numpy()).max() <= bound, name
            assert p.numpy().std() > 0.4 * bound, name
    np.testing.assert_array_equal(m.encoder.norm.weight.numpy(), 1.0)
    np.testing.assert_array_equal(m.decoder.layers[0].self_attn.in_proj_bias.numpy(), 0.0)
    assert (m.d_model, m.nhead, m.batch_first) == (8, 2, False)


def test_transformer_custom_encoder_decoder():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 8), 1)
    dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(4, 2, 8), 1)
    m = nn.Transformer(d_model=4, nhead=2, custom_encoder=enc, custom_decoder=dec)
    assert m.encoder is enc and m.decoder is dec
    assert "encoder.norm.weight" not in m.state_dict()


def test_generate_square_subsequent_mask():
    mask = nn.Transformer.generate_square_subsequent_mask(4)
    assert mask.shape == (4, 4) and mask.dtype == np.float32 and not mask.requires_grad
    expected = np.where(np.triu(np.ones((4, 4), dtype=bool), 1), -np.inf, 0.0)
    np.testing.assert_array_equal(mask.numpy(), expected)
    assert nn.Transformer.generate_square_subsequent_mask(3, dtype=np.float64).dtype == \
        np.float64


def test_activation_choice():
    assert nn.TransformerEncoderLayer(4, 2, 8, activation="gelu").activation is F.gelu
    assert nn.TransformerEncoderLayer(4, 2, 8).activation is F.relu
    fn = engine.tanh
    assert nn.TransformerDecoderLayer(4, 2, 8, activation=fn).activation is fn
    with pytest.raises(ValueError, match="activation should be relu/gelu, not 'swish'"):
        nn.TransformerEncoderLayer(4, 2, 8, activation="swish")


# ------------------------------------------------------------------ values
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_numpy(norm_first):
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, activation="gelu",
                                       norm_first=norm_first).double()
    x = _t((3, 2, 4), 0, requires_grad=False)
    causal = np.triu(np.ones((3, 3), dtype=bool), 1)
    out = layer(x, src_mask=causal)
    sd = {k: v.numpy() for k, v in layer.state_dict().items()}
    allowed = ~causal

    def ln(z, i):
        return _layer_norm(z, sd[f"norm{i}.weight"], sd[f"norm{i}.bias"])

    def ff(z):
        from math import erf
        hdn = z @ sd["linear1.weight"].T + sd["linear1.bias"]
        hdn = hdn * 0.5 * (1 + np.vectorize(erf)(hdn / np.sqrt(2)))
        return hdn @ sd["linear2.weight"].T + sd["linear2.bias"]

    z = x.numpy()
    if norm_first:
        z = z + _self_attention(sd, "self_attn.", ln(z, 1), 2, allowed)
        z = z + ff(ln(z, 2))
    else:
        z = ln(z + _self_attention(sd, "self_attn.", z, 2, allowed), 1)
        z = ln(z + ff(z), 2)
    np.testing.assert_allclose(out.numpy(), z, rtol=1e-10, atol=1e-12)


def test_is_causal_without_mask_equals_causal_mask():
    m = nn.Transformer(d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                       dim_feedforward=8, dropout=0.0).double()
    src, tgt = _t((5, 2, 4), 1, False), _t((3, 2, 4), 2, False)
    a = m(src, tgt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(3, dtype="f8"))
    b = m(src, tgt, tgt_is_causal=True)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-13)
    c = m(src, tgt)
    assert not np.allclose(a.numpy(), c.numpy())


def test_batch_first_and_unbatched_transformer():
    m = nn.Transformer(d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                       dim_feedforward=8, dropout=0.0).double()
    src, tgt = _t((5, 2, 4), 3, False), _t((3, 2, 4), 4, False)
    kpm = np.array([[False] * 4 + [True], [False] * 5])
    out = m(src, tgt, src_key_padding_mask=kpm, memory_key_padding_mask=kpm)
    bf = nn.Transformer(d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                        dim_feedforward=8, dropout=0.0, batch_first=True).double()
    bf.load_state_dict(m.state_dict())
    out_bf = bf(src.swapaxes(0, 1), tgt.swapaxes(0, 1), src_key_padding_mask=kpm,
                memory_key_padding_mask=kpm)
    np.testing.assert_allclose(out_bf.numpy(), out.numpy().swapaxes(0, 1), rtol=1e-12)
    out_u = m(src[:, 1], tgt[:, 1])
    assert out_u.shape == (3, 4)
    np.testing.assert_allclose(out_u.numpy(), out.numpy()[:, 1], rtol=1e-12)


def test_dropout_modes():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3)
    x = engine.randn(4, 2, 8)
    engine.manual_seed(5)
    a = layer(x)
    engine.manual_seed(5)
    b = layer(x)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    layer.eval()
    c = layer(x)
    np.testing.assert_array_equal(c.numpy(), layer(x).numpy())
    assert not np.allclose(a.numpy(), c.numpy())


def test_float32_stays_float32():
    m = nn.Transformer(d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                       dim_feedforward=8)
    out = m(engine.randn(3, 2, 4), engine.randn(2, 2, 4),
            tgt_mask=nn.Transformer.generate_square_subsequent_mask(2))
    assert out.dtype == np.float32
    out.sum().backward()
    assert all(p.grad.dtype == np.float32 for p in m.parameters())


def test_transformer_errors():
    m = nn.Transformer(d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                       dim_feedforward=8)
    with pytest.raises(ValueError, match=r"batch number of src and tgt must be equal, got "
                                         r"src \(3, 2, 4\) and tgt \(2, 3, 4\)"):
        m(engine.randn(3, 2, 4), engine.randn(2, 3, 4))
    with pytest.raises(ValueError, match="equal to d_model=4"):
        m(engine.randn(3, 2, 4), engine.randn(2, 2, 6))


# ------------------------------------------------------------------ gradient checks
@pytest.mark.parametrize("norm_first,activation,batch_first", [
    (False, "relu", False), (True, "gelu", True)])
def test_gradcheck_encoder_layer(norm_first, activation, batch_first):
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, activation=activation,
                                       norm_first=norm_first, batch_first=batch_first).double()
    kpm = np.array([[False, False, True], [False, False, False]])
    shape = (2, 3, 4) if batch_first else (3, 2, 4)
    engine.gradcheck(lambda x: layer(x, src_key_padding_mask=kpm, is_causal=True),
                     [_t(shape, 6)], params=layer)


@pytest.mark.parametrize("norm_first", [False, True])
def test_gradcheck_decoder_layer(norm_first):
    layer = nn.TransformerDecoderLayer(4, 2, 6, dropout=0.0, norm_first=norm_first).double()
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(3, dtype=np.float64)
    mkpm = np.array([[False, False, False, True], [False, False, False, False]])
    engine.gradcheck(lambda t, m: layer(t, m, tgt_mask=tgt_mask, memory_key_padding_mask=mkpm),
                     [_t((3, 2, 4), 7), _t((4, 2, 4), 8)], params=layer)


def test_gradcheck_stacks_with_norm():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0), 2,
                                norm=nn.LayerNorm(4)).double()
    engine.gradcheck(lambda x: enc(x, mask=np.triu(np.ones((3, 3), dtype=bool), 1)),
                     [_t((3, 1, 4), 9)], params=enc)
    dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(4, 2, 6, dropout=0.0), 2,
                                norm=nn.LayerNorm(4)).double()
    engine.gradcheck(lambda t, m: dec(t, m, tgt_is_causal=True), [_t((2, 1, 4), 10),
                                                                  _t((3, 1, 4), 11)],
                     params=dec)


def test_gradcheck_full_transformer():
    m = nn.Transformer(d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                       dim_feedforward=6, dropout=0.0, activation="gelu").double()
    skpm = np.array([[False, False, True], [False, False, False]])
    engine.gradcheck(lambda s, t: m(s, t, tgt_is_causal=True, src_key_padding_mask=skpm,
                                    memory_key_padding_mask=skpm),
                     [_t((3, 2, 4), 12), _t((2, 2, 4), 13)], params=m)


# ------------------------------------------------------------------ positional encoding
def test_positional_encoding_values_and_layouts():
    pe = nn.PositionalEncoding(6, max_len=10)
    assert list(pe.state_dict()) == []                  # non-persistent buffer
    assert pe.pe.shape == (10, 6) and pe.pe.dtype == np.float32
    pos, i = np.arange(10)[:, None], np.arange(3)[None, :]
    angle = pos / 10000.0 ** (2 * i / 6)
    np.testing.assert_allclose(pe.pe.numpy()[:, 0::2], np.sin(angle), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(pe.pe.numpy()[:, 1::2], np.cos(angle), rtol=1e-6, atol=1e-7)
    x = engine.randn(4, 2, 6)
    np.testing.assert_allclose(pe(x).numpy(), x.numpy() + pe.pe.numpy()[:4, None],
                               rtol=1e-6)
    pe_bf = nn.PositionalEncoding(6, max_len=10, batch_first=True)
    np.testing.assert_allclose(pe_bf(x.swapaxes(0, 1)).numpy(),
                               pe(x).numpy().swapaxes(0, 1), rtol=1e-6)
    np.testing.assert_allclose(pe(x[:, 0]).numpy(), pe(x).numpy()[:, 0], rtol=1e-6)
    odd = nn.PositionalEncoding(5, max_len=3)
    assert odd.pe.shape == (3, 5) and np.isfinite(odd.pe.numpy()).all()
    with pytest.raises(ValueError, match="sequence length 11 exceeds max_len 10"):
        pe(engine.randn(11, 1, 6))


def test_positional_encoding_dtype_and_gradient():
    pe = nn.PositionalEncoding(4, max_len=8, dropout=0.0)
    assert pe(engine.randn(3, 4, dtype=np.float64)).dtype == np.float64
    assert pe(engine.randn(3, 4)).dtype == np.float32
    pe.double()
    assert pe.pe.dtype == np.float64
    engine.gradcheck(pe, [_t((3, 2, 4), 14)])


# ------------------------------------------------------------------ devices
def test_transformer_on_device_matches_cpu(device):
    m = nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                       dim_feedforward=16, dropout=0.0, batch_first=True)
    pe = nn.PositionalEncoding(8, max_len=16, batch_first=True)
    src, tgt = engine.randn(2, 5, 8), engine.randn(2, 4, 8)
    kpm = np.array([[False] * 4 + [True], [False] * 5])
    mask = nn.Transformer.generate_square_subsequent_mask(4)

    def run(dev):
        m.zero_grad()
        out = m(pe(src.to(dev)), tgt.to(dev), tgt_mask=mask.to(dev),
                src_key_padding_mask=engine.tensor(kpm, device=dev))
        (out * out).sum().backward()
        return [out.numpy()] + [p.grad.numpy() for p in m.parameters()]

    ref = run("cpu")
    m.to(device)
    pe.to(device)
    for a, b in zip(run(device), ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
