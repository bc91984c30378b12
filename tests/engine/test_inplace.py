"""In-place methods against PyTorch: values, dtypes, versions, the graph they record on a
non-leaf and its gradients, the leaf error, and gradchecks of chains of in-place ops."""

import numpy as np
import pytest

import engine

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

SHAPE = (3, 4)
TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}
LEAF = "a leaf Variable that requires grad is being used in an in-place operation"

# Each case: the in-place call, written once for both libraries (o: the operands).
CASES = {
    "add_ tensor": lambda x, o: x.add_(o["b"]),
    "add_ row, alpha": lambda x, o: x.add_(o["row"], alpha=-0.5),
    "add_ scalar": lambda x, o: x.add_(2.5),
    "sub_ tensor, alpha": lambda x, o: x.sub_(o["b"], alpha=2.0),
    "sub_ scalar": lambda x, o: x.sub_(0.75),
    "mul_ tensor": lambda x, o: x.mul_(o["b"]),
    "mul_ row": lambda x, o: x.mul_(o["row"]),
    "mul_ scalar": lambda x, o: x.mul_(-3.0),
    "div_ tensor": lambda x, o: x.div_(o["pos"]),
    "div_ scalar": lambda x, o: x.div_(4.0),
    "pow_ scalar": lambda x, o: x.pow_(2.0),
    "pow_ tensor": lambda x, o: x.pow_(o["pos"]),
    "neg_": lambda x, o: x.neg_(),
    "exp_": lambda x, o: x.exp_(),
    "tanh_": lambda x, o: x.tanh_(),
    "sigmoid_": lambda x, o: x.sigmoid_(),
    "relu_": lambda x, o: x.relu_(),
    "clamp_ both": lambda x, o: x.clamp_(-0.5, 0.6),
    "clamp_ min": lambda x, o: x.clamp_(min=0.1),
    "clip_ max": lambda x, o: x.clip_(max=-0.2),
    "masked_fill_ scalar": lambda x, o: x.masked_fill_(o["mask"], -1.0),
    "masked_fill_ row mask, 0-d tensor": lambda x, o: x.masked_fill_(o["mask_row"], o["s"]),
    "copy_": lambda x, o: x.copy_(o["b"]),
    "copy_ row": lambda x, o: x.copy_(o["row"]),
    "fill_ scalar": lambda x, o: x.fill_(0.25),
    "fill_ 0-d tensor": lambda x, o: x.fill_(o["s"]),
    "zero_": lambda x, o: x.zero_(),
}
POSITIVE = {"pow_ tensor"}     # the tensor written must be positive


def _arrays(seed=0):
    r = np.random.default_rng(seed)
    return {"x": r.standard_normal(SHAPE), "b": r.standard_normal(SHAPE),
            "row": r.standard_normal(SHAPE[1]), "pos": r.uniform(0.5, 2.0, SHAPE),
            "s": np.array(0.3), "mask": r.random(SHAPE) < 0.5,
            "mask_row": np.array([True, False, False, True]), "u": r.standard_normal(SHAPE)}


def _operands(lib, arrays, dtype, requires_grad=False):
    make = engine.tensor if lib is engine else torch.tensor
    out = {}
    for k, a in arrays.items():
        if a.dtype == bool:
            out[k] = make(a)
        else:
            out[k] = make(a.astype(dtype), requires_grad=requires_grad and k != "u")
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", list(CASES))
def test_values_dtype_and_version_match_pytorch(case, dtype):
    arrays = _arrays()
    if case in POSITIVE:
        arrays["x"] = np.abs(arrays["x"]) + 0.5
    ours, theirs = _operands(engine, arrays, dtype), _operands(torch, arrays, dtype)
    x, xt = ours["x"], theirs["x"]
    out = CASES[case](x, ours)
    CASES[case](xt, theirs)
    assert out is x and x.dtype == dtype and x.shape == SHAPE
    np.testing.assert_allclose(x.numpy(), xt.numpy(), **TOL[dtype])
    assert x._version == xt._version == 1
    assert x.is_leaf and not x.requires_grad


@pytest.mark.parametrize("case", list(CASES))
def test_recorded_on_a_non_leaf_with_the_gradients_of_pytorch(case):
    """y = f(x); y.op_(operands): y's grad_fn becomes the op's node; the gradients of x
    and of every operand that requires grad are PyTorch's (float64, random upstream)."""
    arrays = _arrays(1)
    ours = _operands(engine, arrays, np.float64, requires_grad=True)
    theirs = _operands(torch, arrays, np.float64, requires_grad=True)
    ys = []
    for lib in (ours, theirs):
        x = lib["x"]
        y = x * x + 0.5 if case in POSITIVE else x * 1.5
        CASES[case](y, lib)
        (y * lib["u"]).sum().backward()
        ys.append(y)
    y, yt = ys
    assert y.grad_fn is not None and y.requires_grad and not y.is_leaf
    assert y._version == yt._version
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), **TOL[np.float64])
    for k in ours:
        g, gt = ours[k].grad, theirs[k].grad
        if gt is None or not gt.abs().sum():
            assert g is None or not np.any(g.numpy()), k
        else:
            np.testing.assert_allclose(g.numpy(), gt.numpy(), err_msg=k, **TOL[np.float64])


@pytest.mark.parametrize("case", list(CASES))
def test_a_leaf_that_requires_grad_refuses_unless_under_no_grad(case):
    arrays = _arrays()
    if case in POSITIVE:
        arrays["x"] = np.abs(arrays["x"]) + 0.5
    ours = _operands(engine, arrays, np.float64)
    x = ours["x"].requires_grad_()
    xt = torch.tensor(arrays["x"], requires_grad=True)
    with pytest.raises(RuntimeError, match=LEAF):
        CASES[case](xt, _operands(torch, arrays, np.float64))
    with pytest.raises(RuntimeError, match=LEAF):
        CASES[case](x, ours)
    assert x._version == 0
    with engine.no_grad():
        CASES[case](x, ours)
    assert x.is_leaf and x.requires_grad and x._version == 1


def test_a_tensor_that_needs_no_grad_takes_the_graph_of_its_operand():
    """buf.add_(w): buf becomes a non-leaf that requires grad, as in PyTorch."""
    r = np.random.default_rng(2)
    w_np, u = r.standard_normal(3), r.standard_normal(3)
    results = []
    for lib in (engine, torch):
        w = lib.tensor(w_np, requires_grad=True)
        buf = lib.zeros(3, dtype=lib.float64 if lib is torch else np.float64)
        buf.add_(w).mul_(w)
        assert not buf.is_leaf and buf.requires_grad
        (buf * lib.tensor(u)).sum().backward()
        results.append(w.grad.numpy())
    np.testing.assert_allclose(*results, rtol=1e-12)


def _chain(x, b):
    """Several in-place ops on one non-leaf, each saving or reading what the last wrote."""
    y = x * 1.0
    y.mul_(b).add_(x, alpha=0.5)
    y.div_(b * b + 1.0).clamp_(-1.5, 1.5)
    y.sigmoid_()
    z = y * y
    z.masked_fill_(x > 0.8, 0.0)
    return z


def test_gradcheck_of_a_chain_of_inplace_ops():
    r = np.random.default_rng(3)
    x, b = r.standard_normal((4, 3)), r.standard_normal((4, 3))
    assert engine.gradcheck(_chain, [x, b])
    assert engine.gradgradcheck(_chain, [x, b])


def test_the_chain_matches_pytorch():
    r = np.random.default_rng(4)
    xa, ba, u = r.standard_normal((4, 3)), r.standard_normal((4, 3)), r.standard_normal((4, 3))
    grads = []
    for lib in (engine, torch):
        x, b = lib.tensor(xa, requires_grad=True), lib.tensor(ba, requires_grad=True)
        z = _chain(x, b)
        (z * lib.tensor(u)).sum().backward()
        grads.append((z.detach().numpy(), x.grad.numpy(), b.grad.numpy()))
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


def test_errors_name_the_op_and_what_does_not_fit():
    i = engine.zeros(3, dtype=np.int64)
    with pytest.raises(TypeError, match=r"add_: .*int64.*keeps the tensor's dtype"):
        i.add_(1.5)
    with pytest.raises(TypeError, match=r"exp_: .*int64"):
        i.exp_()
    x = engine.zeros(3)
    with pytest.raises(ValueError, match=r"mul_: an operand of shape \(2, 3\) can't be "
                                         r"broadcast to the tensor's shape \(3,\)"):
        x.mul_(engine.ones(2, 3))
    with pytest.raises(ValueError, match="read-only"):
        engine.zeros(3).broadcast_to((2, 3)).add_(1.0)
    with pytest.raises(RuntimeError, match="at least one of 'min' or 'max'"):
        x.clamp_()
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        x.masked_fill_(engine.tensor([1, 0, 1]), 0.0)
    with pytest.raises(ValueError, match=r"masked_fill_: a mask of shape \(2,\)"):
        x.masked_fill_(engine.tensor([True, False]), 0.0)
    with pytest.raises(RuntimeError, match=r"fill_: only supports a 0-dimensional value"):
        x.fill_(engine.ones(3))
    with pytest.raises(ValueError, match=r"copy_: .*\(3,\).*\(2,\)"):
        x.copy_(engine.ones(2))
    with pytest.raises(TypeError, match="normal_: expects a floating-point tensor"):
        i.normal_()
    with pytest.raises(TypeError, match=r"add_: the tensor is int64; only a floating-point "
                                        r"tensor can take values that require grad"):
        i.add_(engine.ones(3, requires_grad=True))
    assert x._version == 0 and i._version == 0


def test_retain_grad_follows_the_tensor_to_its_new_values():
    grads = []
    for lib in (engine, torch):
        x = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
        y = x * 2.0
        y.retain_grad()
        y.mul_(3.0)
        y[0] = 0.5
        (y * y).sum().backward()
        grads.append((y.grad.numpy(), x.grad.numpy()))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_detach_makes_a_leaf_in_place():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    xt = torch.tensor([1.0, 2.0], requires_grad=True)
    for y in (x * 2.0, xt * 2.0):
        assert y.detach_() is y
        assert y.is_leaf and not y.requires_grad and y.grad_fn is None
    y = x * 2.0
    y.detach_()
    assert y._version == 0 and np.array_equal(y.numpy(), [2.0, 4.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_and_uniform_draw_from_the_engine_generator(dtype):
    x = engine.zeros(200, 500, dtype=dtype)
    engine.manual_seed(7)
    assert x.normal_(1.5, 0.5) is x and x.dtype == dtype and x._version == 1
    first = x.numpy()
    assert abs(first.mean() - 1.5) < 0.01 and abs(first.std() - 0.5) < 0.01
    engine.manual_seed(7)
    np.testing.assert_array_equal(x.normal_(1.5, 0.5).numpy(), first)
    x.uniform_(-2.0, 3.0)
    u = x.numpy()
    assert u.min() >= -2.0 and u.max() < 3.0 and abs(u.mean() - 0.5) < 0.02
    g1, g2 = engine.Generator().manual_seed(3), engine.Generator().manual_seed(3)
    a = engine.zeros(5, dtype=dtype).uniform_(generator=g1).numpy()
    b = engine.zeros(5, dtype=dtype).uniform_(generator=g2).numpy()
    np.testing.assert_array_equal(a, b)
    assert x._version == 3


def test_a_random_fill_of_a_non_leaf_passes_zero_gradient_back():
    for lib in (engine, torch):
        x = lib.ones(3, requires_grad=True)
        y = x * 2.0
        y.normal_()
        assert y.grad_fn is not None
        y.sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), np.zeros(3))
