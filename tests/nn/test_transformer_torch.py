"""Transformer layers, stacks and the full model against PyTorch: same weights (loaded from
PyTorch's state dict as arrays), same outputs and gradients, state dict keys and shapes."""

import warnings

import numpy as np
import pytest

import engine
import nn

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.torch,
    # PyTorch deprecates mixing bool and float masks; we support it, and test it
    pytest.mark.filterwarnings("ignore:Support for mismatched:UserWarning"),
    pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning"),
]

TOL = {np.float64: dict(rtol=1e-10, atol=1e-11), np.float32: dict(rtol=1e-5, atol=2e-5)}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


def _pair(make_theirs, make_ours, dtype):
    """Both models, ours loaded from theirs; train mode with dropout 0 keeps PyTorch off
    its inference fast path, so both compute the same formulas."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # PyTorch's nested-tensor advice
        theirs = make_theirs(torch.nn).to(TORCH_DTYPE[dtype])
    ours = make_ours(nn).to(dtype=dtype)
    sd = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, v.shape) for k, v in sd.items()]
    ours.load_state_dict(sd)
    return ours, theirs


def _same(make, dtype):
    return _pair(make, make, dtype)


def _compare(ours, theirs, arrays, dtype, **kwargs):
    tol = TOL[dtype]
    xs = [engine.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, dtype=TORCH_DTYPE[dtype], requires_grad=True) for a in arrays]
    tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else
           (torch.tensor(v.numpy()) if isinstance(v, engine.Tensor) else v)
           for k, v in kwargs.items()}
    out = ours(*xs, **kwargs)
    tout = theirs(*ts, **tkw)
    assert out.shape == tuple(tout.shape) and out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **tol)
    u = np.random.default_rng(9).standard_normal(out.shape).astype(dtype)
    (out * engine.tensor(u)).sum().backward()
    (tout * torch.tensor(u)).sum().backward()
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), **tol)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), **tol,
                                   err_msg=name)


def _causal(n, dtype=np.float64):
    return nn.Transformer.generate_square_subsequent_mask(n, dtype=dtype)


def _padding(n, s):
    kpm = np.zeros((n, s), dtype=bool)
    kpm[0, -2:] = True
    return kpm


LAYER_CONFIGS = [
    dict(),
    dict(norm_first=True),
    dict(activation="gelu", batch_first=True),
    dict(norm_first=True, activation="gelu", batch_first=True, layer_norm_eps=1e-3),
    dict(bias=False),
]


def _ids(c):
    return "-".join(f"{k}={v}" for k, v in c.items()) or "default"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", LAYER_CONFIGS, ids=_ids)
def test_encoder_layer(dtype, config):
    ours, theirs = _same(lambda m: m.TransformerEncoderLayer(8, 2, 12, dropout=0.0, **config),
                         dtype)
    rng = np.random.default_rng(0)
    bf = config.get("batch_first", False)
    x = rng.standard_normal((3, 5, 8) if bf else (5, 3, 8))
    _compare(ours, theirs, [x], dtype)
    _compare(ours, theirs, [x], dtype, src_mask=np.triu(np.ones((5, 5), dtype=bool), 1),
             src_key_padding_mask=_padding(3, 5))
    _compare(ours, theirs, [x], dtype, src_mask=_causal(5, dtype), is_causal=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", LAYER_CONFIGS, ids=_ids)
def test_decoder_layer(dtype, config):
    ours, theirs = _same(lambda m: m.TransformerDecoderLayer(8, 2, 12, dropout=0.0, **config),
                         dtype)
    rng = np.random.default_rng(1)
    bf = config.get("batch_first", False)
    tgt = rng.standard_normal((3, 4, 8) if bf else (4, 3, 8))
    mem = rng.standard_normal((3, 6, 8) if bf else (6, 3, 8))
    _compare(ours, theirs, [tgt, mem], dtype)
    _compare(ours, theirs, [tgt, mem], dtype, tgt_mask=_causal(4, dtype),
             tgt_key_padding_mask=_padding(3, 4), memory_key_padding_mask=_padding(3, 6))
    mm = np.zeros((4, 6), dtype=bool)
    mm[:, 0] = True
    _compare(ours, theirs, [tgt, mem], dtype, memory_mask=mm, tgt_mask=_causal(4, dtype),
             tgt_is_causal=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_encoder_and_decoder_stacks(dtype):
    def enc(m):
        return m.TransformerEncoder(m.TransformerEncoderLayer(8, 4, 16, dropout=0.0), 2,
                                    norm=m.LayerNorm(8))

    def dec(m):
        return m.TransformerDecoder(m.TransformerDecoderLayer(8, 4, 16, dropout=0.0,
                                                              norm_first=True), 2,
                                    norm=m.LayerNorm(8))
    rng = np.random.default_rng(2)
    src, tgt = rng.standard_normal((5, 2, 8)), rng.standard_normal((3, 2, 8))
    ours, theirs = _same(enc, dtype)
    _compare(ours, theirs, [src], dtype, mask=_causal(5, dtype),
             src_key_padding_mask=_padding(2, 5))
    ours, theirs = _same(dec, dtype)
    _compare(ours, theirs, [tgt, src], dtype, tgt_mask=_causal(3, dtype),
             memory_key_padding_mask=_padding(2, 5))


TRANSFORMER_CONFIGS = [
    dict(),
    dict(batch_first=True, norm_first=True, activation="gelu"),
    dict(num_encoder_layers=1, num_decoder_layers=3, bias=False),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", TRANSFORMER_CONFIGS, ids=_ids)
def test_full_transformer(dtype, config):
    kwargs = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=2,
                  dim_feedforward=16, dropout=0.0)
    kwargs.update(config)
    ours, theirs = _same(lambda m: m.Transformer(**kwargs), dtype)
    rng = np.random.default_rng(3)
    bf = config.get("batch_first", False)
    src = rng.standard_normal((2, 6, 8) if bf else (6, 2, 8))
    tgt = rng.standard_normal((2, 4, 8) if bf else (4, 2, 8))
    _compare(ours, theirs, [src, tgt], dtype)
    _compare(ours, theirs, [src, tgt], dtype, tgt_mask=_causal(4, dtype),
             src_key_padding_mask=_padding(2, 6), tgt_key_padding_mask=_padding(2, 4),
             memory_key_padding_mask=_padding(2, 6))


def test_generate_square_subsequent_mask_matches_torch():
    ours = nn.Transformer.generate_square_subsequent_mask(5)
    theirs = torch.nn.Transformer.generate_square_subsequent_mask(5)
    assert ours.dtype == np.float32 and theirs.dtype == torch.float32
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_fresh_transformer_init_statistics_match_torch():
    """Initialization follows PyTorch's scheme (Xavier on every matrix, LayerNorm ones and
    zeros, zero attention biases): same bounds, matching spread."""
    ours = nn.Transformer(d_model=16, nhead=4, num_encoder_layers=1, num_decoder_layers=1,
                          dim_feedforward=32)
    theirs = torch.nn.Transformer(d_model=16, nhead=4, num_encoder_layers=1,
                                  num_decoder_layers=1, dim_feedforward=32)
    tsd = theirs.state_dict()
    for k, v in ours.state_dict().items():
        a, b = v.numpy(), tsd[k].numpy()
        if a.ndim > 1:
            bound = np.sqrt(6.0 / sum(a.shape))
            assert np.abs(a).max() <= bound and np.abs(b).max() <= bound
            np.testing.assert_allclose(a.std(), b.std(), rtol=0.25, err_msg=k)
        elif "norm" in k and k.endswith("weight"):
            np.testing.assert_array_equal(a, b)
        elif "in_proj_bias" in k or "out_proj.bias" in k:
            np.testing.assert_array_equal(a, 0.0)
            np.testing.assert_array_equal(b, 0.0)
