"""The Tensor speaks PyTorch: each case is one piece of code run on engine Tensors and on
torch Tensors, and the two must agree in values, dtypes, shapes and gradients (float64 to
1e-12, float32 to 1e-5). The cases where NumPy means something else come first."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import engine

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch

S = (3, 4)       # shapes used below
B = (2, 3, 4)

# (name, fn(lib, *tensors), input shapes): lib is the module, engine or torch
CONFLICTS = [
    ("transpose_2d", lambda lib, x: x.transpose(0, 1), [S]),
    ("transpose_2d_negative", lambda lib, x: x.transpose(-1, -2), [S]),
    ("transpose_3d", lambda lib, x: x.transpose(0, 2), [B]),
    ("transpose_function", lambda lib, x: lib.transpose(x, 0, 1), [S]),
    ("swapaxes", lambda lib, x: x.swapaxes(1, 2), [B]),
    ("permute_varargs", lambda lib, x: x.permute(2, 0, 1), [B]),
    ("permute_tuple", lambda lib, x: x.permute((1, 2, 0)), [B]),
    ("permute_function", lambda lib, x: lib.permute(x, (2, 1, 0)), [B]),
    ("T_2d", lambda lib, x: x.T, [S]),
    ("mT", lambda lib, x: x.mT, [B]),
    ("t_2d", lambda lib, x: x.t(), [S]),
    ("t_1d", lambda lib, x: x.t(), [(4,)]),
    ("max_dim", lambda lib, x: x.max(1), [S]),
    ("max_dim_keepdim", lambda lib, x: x.max(dim=0, keepdim=True), [S]),
    ("max_all", lambda lib, x: x.max(), [S]),
    ("max_other", lambda lib, x, y: x.max(y), [S, S]),
    ("max_function", lambda lib, x: lib.max(x, 1), [B]),
    ("min_dim", lambda lib, x: x.min(-1), [B]),
    ("min_all", lambda lib, x: x.min(), [S]),
    ("min_other", lambda lib, x, y: lib.min(x, y), [S, (4,)]),
    ("sort", lambda lib, x: x.sort(), [S]),
    ("sort_dim_descending", lambda lib, x: x.sort(0, descending=True), [S]),
    ("sort_function", lambda lib, x: lib.sort(x, dim=1), [B]),
    ("argsort", lambda lib, x: x.argsort(dim=0, descending=True), [S]),
    ("topk", lambda lib, x: x.topk(2), [S]),
    ("topk_dim_smallest", lambda lib, x: x.topk(2, dim=0, largest=False), [S]),
    ("topk_function", lambda lib, x: lib.topk(x, 3, 1), [B]),
    ("median_all_odd", lambda lib, x: x.median(), [(3, 5)]),
    ("median_all_even", lambda lib, x: x.median(), [S]),
    ("median_dim", lambda lib, x: x.median(1), [S]),
    ("median_dim_keepdim", lambda lib, x: x.median(dim=0, keepdim=True), [B]),
    ("split_size", lambda lib, x: x.split(2, dim=1), [(3, 5)]),
    ("split_sizes", lambda lib, x: x.split([1, 3, 1], 1), [(3, 5)]),
    ("split_function", lambda lib, x: lib.split(x, 2), [(5, 2)]),
    ("chunk", lambda lib, x: x.chunk(2, 1), [(3, 5)]),
    ("chunk_fewer", lambda lib, x: x.chunk(4), [(6, 2)]),
    ("chunk_function", lambda lib, x: lib.chunk(x, 3, dim=-1), [B]),
    ("repeat", lambda lib, x: x.repeat(2, 1, 3), [S]),
    ("repeat_same_ndim", lambda lib, x: x.repeat(2, 3), [S]),
    ("repeat_interleave", lambda lib, x: x.repeat_interleave(2, dim=0), [S]),
    ("repeat_interleave_flat", lambda lib, x: x.repeat_interleave(3), [S]),
    ("expand", lambda lib, x: x.expand(2, -1, -1), [(1, 4)]),
    ("expand_tuple", lambda lib, x: x.expand((3, 4)), [(3, 1)]),
    ("expand_as", lambda lib, x, y: x.expand_as(y), [(1, 4), B]),
    ("flatten", lambda lib, x: x.flatten(), [B]),
    ("flatten_start", lambda lib, x: x.flatten(1), [B]),
    ("flatten_range", lambda lib, x: lib.flatten(x, 0, 1), [B]),
    ("view_varargs", lambda lib, x: x.view(-1, 3), [S]),
    ("view_tuple", lambda lib, x: x.view((2, -1)), [S]),
    ("reshape_varargs", lambda lib, x: x.reshape(4, 3), [S]),
    ("view_as", lambda lib, x, y: x.view_as(y), [S, (2, 6)]),
    ("reshape_as", lambda lib, x, y: x.reshape_as(y), [S, (6, 2)]),
    ("squeeze_not_one", lambda lib, x: x.squeeze(0), [(2, 1, 3)]),
    ("squeeze_one", lambda lib, x: x.squeeze(1), [(2, 1, 3)]),
    ("squeeze_all", lambda lib, x: x.squeeze(), [(1, 2, 1)]),
    ("unsqueeze", lambda lib, x: x.unsqueeze(-1), [S]),
    ("amax_dims", lambda lib, x: x.amax(dim=(0, 2)), [B]),
    ("amin_keepdim", lambda lib, x: lib.amin(x, 1, keepdim=True), [B]),
    ("var_default_unbiased", lambda lib, x: x.var(), [S]),
    ("var_dim", lambda lib, x: x.var(1), [S]),
    ("var_biased", lambda lib, x: x.var(0, unbiased=False), [S]),
    ("var_correction", lambda lib, x: lib.var(x, dim=(0, 1), correction=0, keepdim=True), [B]),
    ("std_default_unbiased", lambda lib, x: x.std(), [S]),
    ("std_dim_biased", lambda lib, x: x.std(dim=1, correction=0), [S]),
    ("sum_dim_keepdim", lambda lib, x: x.sum(dim=(0, 2), keepdim=True), [B]),
    ("mean_dim", lambda lib, x: lib.mean(x, 1), [B]),
    ("logsumexp", lambda lib, x: x.logsumexp(dim=1), [S]),
    ("argmax_dim", lambda lib, x: x.argmax(dim=1, keepdim=True), [S]),
    ("argmin_all", lambda lib, x: x.argmin(), [S]),
    ("softmax_dim", lambda lib, x: x.softmax(dim=0), [S]),
    ("log_softmax_dim", lambda lib, x: x.log_softmax(1), [S]),
]

NEW = [
    ("contiguous", lambda lib, x: x.t().contiguous(), [S]),
    ("clone", lambda lib, x: x.clone() * 2, [S]),
    ("narrow", lambda lib, x: x.narrow(1, 1, 2), [S]),
    ("narrow_negative_start", lambda lib, x: lib.narrow(x, 0, -2, 2), [S]),
    ("masked_fill", lambda lib, x: x.masked_fill(x > 0, -1.5), [S]),
    ("masked_fill_broadcast", lambda lib, x: x.masked_fill(
        lib.tensor([True, False, False, True]), 0.0), [S]),
    ("masked_fill_inf", lambda lib, x: x.masked_fill(lib.ones(4, 4).triu(1) > 0,
                                                     float("-inf")).softmax(-1), [(4, 4)]),
    ("masked_fill_tensor_value", lambda lib, x, v: x.masked_fill(x < 0, v), [S, ()]),
    ("clamp_scalars", lambda lib, x: x.clamp(-0.5, 0.5), [S]),
    ("clamp_min_only", lambda lib, x: x.clamp(min=0.1), [S]),
    ("clamp_tensors", lambda lib, x, lo, hi: x.clamp(lo, hi + 1), [S, (4,), S]),
    ("clip", lambda lib, x: lib.clip(x, max=0.2), [S]),
    ("norm", lambda lib, x: x.norm(), [S]),
    ("norm_fro_dim", lambda lib, x: x.norm(p="fro", dim=1), [S]),
    ("norm_dim_keepdim", lambda lib, x: x.norm(dim=(1, 2), keepdim=True), [B]),
    ("norm_1", lambda lib, x: lib.norm(x, p=1, dim=0), [S]),
    ("norm_3", lambda lib, x: x.norm(p=3), [S]),
    ("norm_inf", lambda lib, x: x.norm(p=float("inf"), dim=1), [S]),
    ("eq", lambda lib, x, y: x.eq(y), [S, S]),
    ("ne_scalar", lambda lib, x: x.ne(0.0), [S]),
    ("lt_ge", lambda lib, x, y: (x.lt(y), x.ge(y), x.le(0.5), x.gt(y)), [S, (4,)]),
    ("comparison_functions", lambda lib, x, y: (lib.eq(x, y), lib.gt(x, y)), [S, S]),
    ("sin", lambda lib, x: x.sin(), [S]),
    ("cos", lambda lib, x: lib.cos(x), [S]),
    ("tril", lambda lib, x: x.tril(), [(4, 4)]),
    ("tril_diagonal", lambda lib, x: lib.tril(x, diagonal=-1), [B]),
    ("triu", lambda lib, x: x.triu(1), [B]),
    ("cat", lambda lib, x, y: lib.cat([x, y], dim=1), [S, (3, 2)]),
    ("cat_default", lambda lib, x, y: lib.cat((x, y)), [S, (1, 4)]),
    ("concat", lambda lib, x, y: lib.concat([x, y], 0), [S, S]),
    ("stack", lambda lib, x, y: lib.stack([x, y], dim=-1), [S, S]),
    ("cumsum", lambda lib, x: x.cumsum(dim=1), [S]),
    ("gather", lambda lib, x: x.gather(1, lib.tensor([[0, 0], [3, 1], [2, 2]])), [S]),
    ("flip", lambda lib, x: x.flip(0), [S]),
    ("where_method", lambda lib, x, y: x.where(x > 0, y), [S, S]),
    ("where_scalars", lambda lib, x: lib.where(x > 0, x, 0.0), [S]),
    ("index", lambda lib, x: x[1], [S]),
    ("all_any", lambda lib, x: ((x > 0).all(dim=1), (x > 0).any(), lib.all(x > -9, 0, True)),
     [S]),
    ("tensor_split", lambda lib, x: x.tensor_split(3, dim=1), [(2, 5)]),
    ("tensor_split_indices", lambda lib, x: lib.tensor_split(x, [1, 4], dim=1), [(2, 5)]),
    ("swapdims", lambda lib, x: x.swapdims(0, -1), [B]),
    ("exp_log_sqrt_abs", lambda lib, x: (x.exp(), x.abs().log(), x.abs().sqrt(), x.abs()),
     [S]),
    ("arithmetic_methods", lambda lib, x, y: (x.add(y, alpha=2), x.sub(y), x.mul(y),
                                              x.div(y), x.abs().pow(y)), [S, S]),
    ("cumsum_function", lambda lib, x: lib.cumsum(x, 0), [B]),
]

CASES = CONFLICTS + NEW
IDS = [c[0] for c in CASES]


def tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)


def flat(out) -> list:
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flat(o)]
    return [out]


def dtype_name(t) -> str:
    return str(t.dtype).replace("torch.", "")


def run_case(fn, shapes, dtype, seed=0):
    """Run ``fn`` on engine and torch Tensors of the same values; backward with one random
    upstream gradient per float output. Returns (ours, theirs, our inputs, their inputs)."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    xs = [engine.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    ours, theirs = flat(fn(engine, *xs)), flat(fn(torch, *ts))
    assert len(ours) == len(theirs)
    grads = [rng.standard_normal(o.shape).astype(dtype) if o.requires_grad else None
             for o in ours]
    pairs = [(o, t, g) for o, t, g in zip(ours, theirs, grads) if g is not None]
    if pairs:
        engine.backward([o for o, _, _ in pairs], [engine.tensor(g) for _, _, g in pairs])
        torch.autograd.backward([t for _, t, _ in pairs], [torch.tensor(g) for _, _, g in pairs])
    return ours, theirs, xs, ts


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name,fn,shapes", CASES, ids=IDS)
def test_same_code_same_results(name, fn, shapes, dtype):
    ours, theirs, xs, ts = run_case(fn, shapes, dtype)
    for o, t in zip(ours, theirs):
        assert isinstance(o, engine.Tensor), name
        assert o.shape == tuple(t.shape), f"{name}: shape {o.shape} != {tuple(t.shape)}"
        assert str(o.dtype) == dtype_name(t), f"{name}: dtype {o.dtype} != {t.dtype}"
        want = t.detach().numpy()
        if o.dtype.kind == "f":
            np.testing.assert_allclose(o.numpy(), want, err_msg=name, **tol(dtype))
        else:
            np.testing.assert_array_equal(o.numpy(), want, err_msg=name)
        assert o.requires_grad == t.requires_grad, name
    for x, t in zip(xs, ts):
        assert (x.grad is None) == (t.grad is None), name
        if x.grad is not None:
            assert x.grad.dtype == x.dtype
            np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), err_msg=name,
                                       **tol(dtype))


def test_transpose_of_a_matrix_is_never_the_identity():
    """NumPy's ``a.transpose(0, 1)`` of a matrix is ``a`` itself; here it is the transpose,
    so a causal mask built the PyTorch way stays causal."""
    x = engine.arange(6.0).reshape(2, 3)
    assert x.transpose(0, 1).shape == (3, 2)
    np.testing.assert_array_equal(x.transpose(0, 1).numpy(), x.numpy().T)
    upper = engine.ones(4, 4).triu(1).transpose(0, 1)            # strictly lower
    np.testing.assert_array_equal(upper.numpy(), np.tril(np.ones((4, 4)), -1))
    with pytest.raises(TypeError):
        x.transpose((1, 0))                                       # NumPy's form: permute


def test_named_tuples():
    x = engine.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    for op, values, indices in [("max", [5.0, 7.0], [1, 0]), ("min", [1.0, 0.0], [0, 1]),
                                ("median", [2.0, 3.0], [2, 2])]:
        out = getattr(x, op)(dim=1)
        assert type(out).__name__ == op
        np.testing.assert_array_equal(out.values.numpy(), values)
        np.testing.assert_array_equal(out.indices.numpy(), indices)
        v, i = out
        assert v is out.values and i is out.indices and out.indices.dtype == np.int64
    assert x.sort().indices.dtype == np.int64 and x.topk(1).values.shape == (2, 1)
    assert x.max().shape == () and float(x.max()) == 7.0


def test_named_tuples_are_engine_return_types_and_pickle():
    x = engine.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    for op in ("max", "min", "sort", "topk", "median"):
        out = getattr(x, op)(1) if op == "topk" else getattr(x, op)(dim=1)
        assert type(out) is getattr(engine.return_types, op)
        again = pickle.loads(pickle.dumps(out))
        assert type(again) is type(out)
        np.testing.assert_array_equal(again.values.numpy(), out.values.numpy())
        np.testing.assert_array_equal(again.indices.numpy(), out.indices.numpy())


def test_max_of_dim_gives_the_gradient_to_the_returned_index_only():
    """``max(dim)`` gradient goes to the index it returns; ``max()`` and ``amax`` share it
    among ties, as PyTorch."""
    for fn, want in [(lambda x: x.max(1).values, [[1.0, 0.0, 0.0]]),
                     (lambda x: x.max(), [[0.5, 0.5, 0.0]]),
                     (lambda x: x.amax(1), [[0.5, 0.5, 0.0]])]:
        x = engine.tensor([[2.0, 2.0, 1.0]], dtype=np.float64, requires_grad=True)
        t = torch.tensor(x.numpy(), requires_grad=True)
        fn(x).sum().backward()
        fn(t).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), want)
        np.testing.assert_array_equal(t.grad.numpy(), want)


def test_size_numel_dim():
    x = engine.zeros(2, 3, 4)
    assert x.size() == (2, 3, 4) and isinstance(x.size(), engine.Size)
    assert repr(x.size()) == "engine.Size([2, 3, 4])" and x.size().numel() == 24
    assert x.size(0) == 2 and x.size(-1) == 4 and x.size()[1:] == (3, 4)
    assert x.numel() == x.nelement() == 24 and x.dim() == x.ndimension() == x.ndim == 3
    assert x.shape == (2, 3, 4)
    with pytest.raises(IndexError, match="size: dim 3 is out of range for a 3-d tensor"):
        x.size(3)


def test_var_of_one_element_is_nan_as_pytorch():
    with pytest.warns(RuntimeWarning):
        v = engine.tensor([1.5]).var()
    with pytest.warns(UserWarning, match="degrees of freedom"):
        assert np.isnan(torch.tensor([1.5]).var().item())
    assert np.isnan(v.item())
    assert engine.tensor([1.5]).var(unbiased=False).item() == 0.0


@pytest.mark.parametrize("p", [2, "fro", 1, 3, float("inf")])
def test_norm_gradient_at_zero_is_zero(p):
    x = engine.zeros(2, 3, dtype=np.float64, requires_grad=True)
    t = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    x.norm(p=p).backward()
    t.norm(p=p).backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())
    assert np.all(x.grad.numpy() == 0)
    engine.gradcheck(lambda a: a.norm(p=p, dim=1), [engine.tensor(
        [[0.0, 0.0, 0.0], [0.5, -1.0, 2.0]], dtype=np.float64, requires_grad=True)])


def test_view_shares_memory_or_refuses_as_pytorch():
    """``view`` never copies: where the strides allow no view it raises, as PyTorch does,
    instead of handing back a copy that in-place edits would not reach."""
    x, t = engine.randn(3, 4), torch.randn(3, 4)
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        t.t().view(12)
    with pytest.raises(RuntimeError, match=r"view: shape \(12,\) .*\(4, 3\).*reshape"):
        x.t().view(12)
    with pytest.raises(RuntimeError, match="view_as"):
        x.t().view_as(engine.zeros(12))
    v = x.t().view(2, 2, 3)                     # splits a dim: a view in both libraries
    assert t.t().view(2, 2, 3).shape == v.shape
    v.add_(1.0)
    np.testing.assert_array_equal(v.numpy().reshape(4, 3), x.t().numpy())
    assert x.t().reshape(12).shape == (12,)     # reshape copies where it must


def test_multinomial_is_a_tensor_method_too():
    w = engine.tensor([0.0, 1.0, 0.0])
    assert w.multinomial(2, replacement=True).numpy().tolist() == [1, 1]
    assert torch.tensor([0.0, 1.0, 0.0]).multinomial(2, replacement=True).tolist() == [1, 1]
