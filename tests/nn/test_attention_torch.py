"""MultiheadAttention and F.scaled_dot_product_attention against PyTorch: same weights,
same outputs, attention weights and gradients."""

import numpy as np
import pytest

import engine
import nn
import nn.functional as F

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


def _pair(kwargs, dtype):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(**kwargs).to(TORCH_DTYPE[dtype])
    ours = nn.MultiheadAttention(**kwargs).to(dtype=dtype)
    sd = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, v.shape) for k, v in sd.items()]
    ours.load_state_dict(sd)
    return ours, theirs


def _run(ours, theirs, arrays, roles, dtype, **kwargs):
    """Call both with query/key/value built from ``arrays`` by ``roles`` (indices, so that
    a shared tensor stays shared), backprop random upstream gradients, compare all."""
    tol = TOL[dtype]
    xs = [engine.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, dtype=TORCH_DTYPE[dtype], requires_grad=True) for a in arrays]
    tkw = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    out, w = ours(*(xs[r] for r in roles), **kwargs)
    tout, tw = theirs(*(ts[r] for r in roles), **tkw)
    assert out.shape == tuple(tout.shape) and out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **tol)
    rng = np.random.default_rng(7)
    u = rng.standard_normal(out.shape).astype(dtype)
    loss, tloss = (out * engine.tensor(u)).sum(), (tout * torch.tensor(u)).sum()
    if tw is None:
        assert w is None
    else:
        assert w.shape == tuple(tw.shape)
        np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), **tol)
        uw = rng.standard_normal(w.shape).astype(dtype)
        loss, tloss = loss + (w * engine.tensor(uw)).sum(), tloss + (tw * torch.tensor(uw)).sum()
    loss.backward()
    tloss.backward()
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), **tol)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), **tol,
                                   err_msg=name)


def _causal(n):
    return np.triu(np.ones((n, n), dtype=bool), k=1)


def _padding(n, s):
    kpm = np.zeros((n, s), dtype=bool)
    kpm[0, -2:] = True
    return kpm


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fused", [True, False])
def test_self_attention_masks(dtype, fused):
    ours, theirs = _pair(dict(embed_dim=8, num_heads=2), dtype)
    x = np.random.default_rng(0).standard_normal((5, 3, 8))
    with engine.use_fused(fused):
        _run(ours, theirs, [x], [0, 0, 0], dtype)
        _run(ours, theirs, [x], [0, 0, 0], dtype, attn_mask=_causal(5),
             key_padding_mask=_padding(3, 5))
        _run(ours, theirs, [x], [0, 0, 0], dtype, key_padding_mask=_padding(3, 5),
             average_attn_weights=False)
        _run(ours, theirs, [x], [0, 0, 0], dtype, attn_mask=_causal(5), is_causal=True,
             need_weights=False)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_float_masks(dtype):
    ours, theirs = _pair(dict(embed_dim=6, num_heads=3), dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 2, 6))
    _run(ours, theirs, [x], [0, 0, 0], dtype,
         attn_mask=rng.standard_normal((4, 4)).astype(dtype))
    _run(ours, theirs, [x], [0, 0, 0], dtype,
         attn_mask=rng.standard_normal((2 * 3, 4, 4)).astype(dtype),
         average_attn_weights=False)
    fk = np.where(_padding(2, 4), -1e3, 0.0).astype(dtype)
    _run(ours, theirs, [x], [0, 0, 0], dtype, key_padding_mask=fk)
    _run(ours, theirs, [x], [0, 0, 0], dtype, attn_mask=np.where(_causal(4), -np.inf, 0.0)
         .astype(dtype), key_padding_mask=fk)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_attention_batch_first(dtype):
    ours, theirs = _pair(dict(embed_dim=8, num_heads=4, batch_first=True), dtype)
    rng = np.random.default_rng(2)
    q, kv, v = rng.standard_normal((3, 4, 8)), rng.standard_normal((3, 6, 8)), \
        rng.standard_normal((3, 6, 8))
    _run(ours, theirs, [q, kv], [0, 1, 1], dtype, key_padding_mask=_padding(3, 6))
    _run(ours, theirs, [q, kv, v], [0, 1, 2], dtype, attn_mask=_causal(6)[:4])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kdim_vdim_no_bias(dtype):
    ours, theirs = _pair(dict(embed_dim=4, num_heads=2, kdim=3, vdim=5, bias=False), dtype)
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 3, 3)),
              rng.standard_normal((5, 3, 5))]
    _run(ours, theirs, arrays, [0, 1, 2], dtype, key_padding_mask=_padding(3, 5))


def test_unbatched():
    ours, theirs = _pair(dict(embed_dim=4, num_heads=2), np.float64)
    rng = np.random.default_rng(4)
    x, m = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    _run(ours, theirs, [x], [0, 0, 0], np.float64, attn_mask=_causal(5))
    _run(ours, theirs, [x, m], [0, 1, 1], np.float64,
         key_padding_mask=np.array([False, False, False, True, True]),
         average_attn_weights=False)
    _run(ours, theirs, [x], [0, 0, 0], np.float64,
         attn_mask=rng.standard_normal((2, 5, 5)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_functional_sdpa(dtype):
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(s) for s in [(2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5)]]
    allowed = rng.random((4, 6)) > 0.3
    allowed[:, 0] = True
    bias = rng.standard_normal((2, 1, 4, 6)).astype(dtype)
    for kwargs in (dict(), dict(is_causal=True), dict(attn_mask=allowed),
                   dict(attn_mask=bias, scale=0.25)):
        xs = [engine.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
        ts = [torch.tensor(a, dtype=TORCH_DTYPE[dtype], requires_grad=True) for a in arrays]
        tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v
               for k, v in kwargs.items()}
        out = F.scaled_dot_product_attention(*xs, **kwargs)
        tout = torch.nn.functional.scaled_dot_product_attention(*ts, **tkw)
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **TOL[dtype])
        u = rng.standard_normal(out.shape).astype(dtype)
        (out * engine.tensor(u)).sum().backward()
        (tout * torch.tensor(u)).sum().backward()
        for x, t in zip(xs, ts):
            np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), **TOL[dtype])


def test_a_float32_mask_serves_a_float64_query():
    """A float mask may have the query's dtype or be float32, as in PyTorch: the causal
    mask a program builds with ``.float()`` works in a float64 model; a learned float32
    mask gets its gradient in float32."""
    ours, theirs = _pair(dict(embed_dim=6, num_heads=3), np.float64)
    rng = np.random.default_rng(8)
    causal = np.where(_causal(4), -np.inf, 0.0).astype(np.float32)
    _run(ours, theirs, [rng.standard_normal((4, 2, 6))], [0, 0, 0], np.float64,
         attn_mask=causal, need_weights=False)
    arrays = [rng.standard_normal((2, 4, 3)) for _ in range(3)]
    bias = rng.standard_normal((4, 4)).astype(np.float32)
    u = rng.standard_normal((2, 4, 3))
    results = []
    for lib, sdpa in ((engine, F.scaled_dot_product_attention),
                      (torch, torch.nn.functional.scaled_dot_product_attention)):
        m = lib.tensor(bias, requires_grad=True)
        out = sdpa(*(lib.tensor(a) for a in arrays), attn_mask=m)
        (out * lib.tensor(u)).sum().backward()
        results.append((out.detach().numpy(), m.grad.numpy()))
    (out, g), (tout, tg) = results
    assert out.dtype == np.float64 and g.dtype == np.float32
    np.testing.assert_allclose(out, tout, rtol=1e-12)
    np.testing.assert_allclose(g, tg, rtol=1e-5, atol=1e-6)
    q32 = engine.tensor(arrays[0], dtype=np.float32)
    with pytest.raises(TypeError, match="attn_mask is float64 but the query is float32"):
        F.scaled_dot_product_attention(q32, q32, q32, attn_mask=engine.tensor(u[0, :, :1]))
    t32 = torch.tensor(arrays[0], dtype=torch.float32)
    with pytest.raises(RuntimeError, match="attn_mask dtype"):
        torch.nn.functional.scaled_dot_product_attention(
            t32, t32, t32, attn_mask=torch.tensor(u[0, :, :1]))


def test_fully_masked_row_differs_from_torch_by_design():
    """PyTorch returns NaN for a query that may attend to nothing; we return out_proj.bias."""
    ours, theirs = _pair(dict(embed_dim=4, num_heads=2), np.float64)
    x = np.random.default_rng(6).standard_normal((3, 1, 4))
    mask = np.zeros((3, 3), dtype=bool)
    mask[0] = True
    out, _ = ours(*(engine.tensor(x),) * 3, attn_mask=mask)
    tout, _ = theirs(*(torch.tensor(x),) * 3, attn_mask=torch.tensor(mask))
    assert torch.isnan(tout[0]).all()
    np.testing.assert_allclose(out.numpy()[0, 0], ours.out_proj.bias.numpy())
    np.testing.assert_allclose(out.numpy()[1:], tout.detach().numpy()[1:], rtol=1e-10)
