"""``x += y``, ``-=``, ``*=``, ``/=``, ``**=`` on Tensors work in place, as in PyTorch: the
same object, the same memory (every name bound to it sees the change), a version bump, and
PyTorch's autograd rules for in-place ops."""

import numpy as np
import pytest

import engine
import nn

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

LEAF = "a leaf Variable that requires grad is being used in an in-place operation"


def _iadd(x, o):
    x += o
    return x


def _isub(x, o):
    x -= o
    return x


def _imul(x, o):
    x *= o
    return x


def _idiv(x, o):
    x /= o
    return x


def _ipow(x, o):
    x **= o
    return x


OPS = {"+=": _iadd, "-=": _isub, "*=": _imul, "/=": _idiv, "**=": _ipow}


def _operand(lib, kind, dtype, r):
    """The right-hand side: a tensor of x's shape, a row broadcast over x, or a number."""
    if kind == "number":
        return 1.75
    shape = (3, 4) if kind == "tensor" else (4,)
    values = r.uniform(0.5, 2.0, shape).astype(dtype)
    return engine.tensor(values) if lib is engine else torch.tensor(values)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["tensor", "row", "number"])
@pytest.mark.parametrize("op", list(OPS))
def test_in_place_on_the_same_object_with_pytorch_values(op, kind, dtype):
    results = []
    for lib in (engine, torch):
        r = np.random.default_rng(0)
        x = (engine.tensor if lib is engine else torch.tensor)(
            r.uniform(0.5, 2.0, (3, 4)).astype(dtype))
        alias, before = x, id(x)
        x = OPS[op](x, _operand(lib, kind, dtype, r))
        assert id(x) == before and alias is x and x._version == 1
        results.append(x)
    ours, theirs = results
    assert ours.dtype == dtype and ours.shape == (3, 4)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=tol)


def test_a_view_shares_the_write():
    x = engine.zeros(2, 3)
    row = x[1]
    row += 5.0
    np.testing.assert_array_equal(x.numpy(), [[0, 0, 0], [5, 5, 5]])
    assert x._version == row._version == 1


def test_recorded_on_a_non_leaf_with_the_gradients_of_pytorch():
    r = np.random.default_rng(1)
    xa, ba, u = r.uniform(0.5, 2.0, (3, 4)), r.uniform(0.5, 2.0, (4,)), r.standard_normal((3, 4))
    grads = []
    for lib in (engine, torch):
        x, b = lib.tensor(xa, requires_grad=True), lib.tensor(ba, requires_grad=True)
        y = x * 1.5
        y += b
        y *= x
        y -= 0.25 * b
        y /= b
        y **= 2.0
        assert not y.is_leaf and y.requires_grad and y._version == 5
        (y * lib.tensor(u)).sum().backward()
        grads.append((y.detach().numpy(), x.grad.numpy(), b.grad.numpy()))
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def _chain(x, b):
    y = x * 1.0
    y += b
    y *= b
    y /= x * x + 1.0
    return y


def test_gradcheck_of_augmented_assignments():
    r = np.random.default_rng(2)
    assert engine.gradcheck(_chain, [r.standard_normal((2, 3)), r.standard_normal((2, 3))])


@pytest.mark.parametrize("op", list(OPS))
def test_a_leaf_that_requires_grad_refuses_unless_under_no_grad(op):
    for lib in (torch, engine):
        w = lib.ones(3, requires_grad=True)
        with pytest.raises(RuntimeError, match=LEAF):
            OPS[op](w, 2.0)
    with engine.no_grad():
        w = OPS[op](w, 2.0)
    assert w.is_leaf and w.requires_grad and w._version == 1


def test_the_manual_sgd_update_changes_the_parameters_of_the_model():
    """``for p in model.parameters(): p -= lr * p.grad`` under no_grad: each ``p`` is the
    model's own Parameter, written in place (out of place it would rebind the loop
    variable and leave the model as it was)."""
    engine.manual_seed(0)
    model = nn.Linear(3, 2)
    before = [p.numpy() for p in model.parameters()]
    model(engine.ones(4, 3)).pow(2).sum().backward()
    with engine.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    for p, old in zip(model.parameters(), before):
        np.testing.assert_allclose(p.numpy(), old - 0.1 * p.grad.numpy(), rtol=1e-6)
        assert isinstance(p, nn.Parameter) and p.is_leaf and p._version == 1


def test_a_number_on_the_left_gives_a_new_tensor():
    t = engine.tensor([1.0, 2.0])
    s = 0.0
    s += t
    assert s is not t and t._version == 0
    np.testing.assert_array_equal(s.numpy(), [1.0, 2.0])


def test_errors_name_the_op_and_keep_the_tensor_as_it_was():
    i = engine.arange(3)
    i += 2
    assert i.dtype == np.int64 and i.tolist() == [2, 3, 4]
    with pytest.raises(TypeError, match=r"add_: .*int64.*keeps the tensor's dtype"):
        i += 0.5
    with pytest.raises(TypeError, match=r"div_: .*int64.*keeps the tensor's dtype"):
        i /= 2
    with pytest.raises(RuntimeError, match="can't be cast"):
        it = torch.arange(3)
        it /= 2
    x = engine.zeros(3)
    with pytest.raises(ValueError, match=r"mul_: an operand of shape \(2, 3\) can't be "
                                         r"broadcast to the tensor's shape \(3,\)"):
        x *= engine.ones(2, 3)
    assert i.tolist() == [2, 3, 4] and x._version == 0
