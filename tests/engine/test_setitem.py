"""Item assignment x[index] = v: in place under no_grad, a recorded op on a non-leaf (the
gradient reaches the untouched part of x and v, broadcast as NumPy), PyTorch's error on a
leaf; basic, integer-array and bool-mask indices, against PyTorch and central differences."""

import numpy as np
import pytest

import engine

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

LEAF = "a leaf Variable that requires grad is being used in an in-place operation"
R = np.random.default_rng(0)
MASK = R.random((3, 4)) < 0.5
ROWS = np.array([True, False, True])

# name: (index for a library, shape of the value assigned; () a 0-d tensor, None a number)
CASES = {
    "int": (lambda lib: 1, (4,)),
    "negative int, number": (lambda lib: -1, None),
    "two ints": (lambda lib: (2, 3), ()),
    "slice": (lambda lib: slice(0, 2), (2, 4)),
    "slice, row broadcast": (lambda lib: slice(1, None), (4,)),
    "column": (lambda lib: (slice(None), 2), (3,)),
    "ellipsis": (lambda lib: (Ellipsis, 0), (1,)),
    "int array": (lambda lib: lib.tensor([0, 2]), (2, 4)),
    "two int arrays": (lambda lib: (lib.tensor([0, 2, 1]), lib.tensor([3, 0, 1])), (3,)),
    "slice and int array": (lambda lib: (slice(None), lib.tensor([3, 1])), (3, 2)),
    "bool mask": (lambda lib: lib.tensor(MASK), (int(MASK.sum()),)),
    "bool mask, number": (lambda lib: lib.tensor(MASK), None),
    "bool rows": (lambda lib: lib.tensor(ROWS), (4,)),
}


def _run(lib, case, x_np, v_np, u):
    index, _ = CASES[case]
    x = lib.tensor(x_np, requires_grad=True)
    v = 0.75 if v_np is None else lib.tensor(v_np, requires_grad=True)
    y = x * 1.5
    y[index(lib)] = v
    assert not y.is_leaf and y.requires_grad and y._version == 1
    (y * lib.tensor(u)).sum().backward()
    return y.detach().numpy(), x.grad.numpy(), None if v_np is None else v.grad.numpy()


@pytest.mark.parametrize("case", list(CASES))
def test_recorded_assignment_matches_pytorch(case):
    r = np.random.default_rng(1)
    shape = CASES[case][1]
    x_np, u = r.standard_normal((3, 4)), r.standard_normal((3, 4))
    v_np = None if shape is None else r.standard_normal(shape)
    ours, theirs = _run(engine, case, x_np, v_np, u), _run(torch, case, x_np, v_np, u)
    for a, b, what in zip(ours, theirs, ("values", "x.grad", "v.grad")):
        if b is None:
            assert a is None
        else:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=what)


@pytest.mark.parametrize("case", list(CASES))
def test_gradcheck(case):
    index, shape = CASES[case]
    r = np.random.default_rng(2)

    def f(x, v):
        y = x * 1.0
        y[index(engine)] = v
        return y

    v = 0.5 if shape is None else r.standard_normal(shape)
    assert engine.gradcheck(f, [r.standard_normal((3, 4)), v])
    assert engine.gradgradcheck(f, [r.standard_normal((3, 4)), v])


def test_negative_steps_and_new_axes_have_no_pytorch_twin_but_gradcheck():
    r = np.random.default_rng(3)

    def f(x, v):
        y = x + 1.0
        y[::-2, None, 1:3] = v
        return y * y

    assert engine.gradcheck(f, [r.standard_normal((5, 4)), r.standard_normal((3, 1, 2))])


def test_under_no_grad_any_tensor_is_written_in_place():
    x = engine.tensor(np.zeros((2, 3)), requires_grad=True)
    xt = torch.zeros((2, 3), dtype=torch.float64, requires_grad=True)
    for lib, t in ((engine, x), (torch, xt)):
        with lib.no_grad():
            t[0, 1:] = 2.0
            t[t > 1.0] = 5.0
        assert t.is_leaf and t.requires_grad and t.grad_fn is None and t._version == 2
    np.testing.assert_array_equal(x.numpy(), xt.detach().numpy())
    i = engine.zeros(4, dtype=np.int64)
    i[engine.tensor([1, 3])] = 7
    assert i.tolist() == [0, 7, 0, 7] and i._version == 1


def test_a_leaf_that_requires_grad_refuses():
    for lib in (engine, torch):
        x = lib.zeros(3, requires_grad=True)
        with pytest.raises(RuntimeError, match=LEAF):
            x[0] = 1.0
        assert x._version == 0


def test_a_buffer_assigned_a_value_that_requires_grad_joins_the_graph():
    """Rows written one by one into a zero buffer, as RNN code collects its outputs."""
    r = np.random.default_rng(4)
    w_np, h_np, u = r.standard_normal((3, 3)), r.standard_normal(3), r.standard_normal((4, 3))
    grads = []
    for lib in (engine, torch):
        w = lib.tensor(w_np, requires_grad=True)
        h = lib.tensor(h_np)
        out = lib.zeros((4, 3), dtype=lib.float64 if lib is torch else np.float64)
        for t in range(4):
            h = (w @ h).tanh()
            out[t] = h
        assert not out.is_leaf and out._version == 4
        (out * lib.tensor(u)).sum().backward()
        grads.append((out.detach().numpy(), w.grad.numpy()))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_a_float64_value_into_a_float32_tensor():
    grads = []
    for lib in (engine, torch):
        x = lib.ones(2, 3, requires_grad=True)
        v = lib.tensor(np.array([1.5, -2.0, 0.25]), requires_grad=True)
        y = x * 2.0
        y[1] = v
        (y * y).sum().backward()
        assert y.dtype == (np.float32 if lib is engine else torch.float32)
        assert v.grad.dtype == (np.float64 if lib is engine else torch.float64)
        grads.append((y.detach().numpy(), x.grad.numpy(), v.grad.numpy()))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_errors_name_the_assignment_and_the_shapes():
    y = engine.zeros(3, 4)
    with pytest.raises(ValueError, match=r"setitem: .*broadcast.*\(tensor shape \(3, 4\), "
                                         r"value shape \(3,\)\)"):
        y[0] = engine.ones(3)
    with pytest.raises(IndexError, match=r"setitem: .*\(tensor shape \(3, 4\)"):
        y[5] = 1.0
    with pytest.raises(IndexError, match="getitem: index arrays must be integer or bool"):
        y[engine.tensor([0.5])] = 1.0
    assert y._version == 0
