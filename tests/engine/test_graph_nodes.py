"""What ``Function.apply`` records: edges, leaf accumulators, absent inputs, output Tensors."""

import copy
import gc
import pickle
import weakref

import numpy as np
import pytest

import engine
from engine import Function, Tensor, function
from engine.function import AccumulateGrad


def leaf(*shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_every_edge_is_node_index_shape_dtype_and_leaves_end_at_accumulators():
    x = leaf(2, 3)
    c = Tensor(np.ones(3))
    h = x * c                          # x needs a gradient, c does not
    y = h.sum(dim=0)
    (edge_x, edge_c) = h.grad_fn.edges
    assert edge_c is None
    assert type(edge_x[0]) is AccumulateGrad and edge_x[0].variable is x
    assert edge_x[1:] == (0, (2, 3), np.dtype(np.float64))
    assert y.grad_fn.edges == ((h.grad_fn, 0, (2, 3), np.dtype(np.float64)),)
    assert h.grad_fn.needs_input_grad == (True, False)


def test_one_accumulator_per_leaf_while_a_graph_holds_it():
    x = leaf(3)
    a, b = x * 2.0, x * 3.0
    acc = a.grad_fn.edges[0][0]
    assert b.grad_fn.edges[0][0] is acc
    acc_ref = weakref.ref(acc)
    del a, b, acc
    assert acc_ref() is None           # the leaf holds its accumulator only weakly
    c = x * 4.0
    c.sum().backward()
    np.testing.assert_allclose(x.grad.data, np.full(3, 4.0))


def test_leaf_and_accumulator_form_no_reference_cycle():
    gc.collect()
    gc.disable()
    try:
        x = leaf(3)
        h = x * 2.0
        acc_ref, x_ref = weakref.ref(h.grad_fn.edges[0][0]), weakref.ref(x)
        del x, h
        assert acc_ref() is None and x_ref() is None
    finally:
        gc.enable()


def test_backward_from_a_leaf_and_grad_with_respect_to_the_output_itself():
    x = leaf(3)
    seed = np.array([1.0, 2.0, 3.0])
    x.backward(seed)
    np.testing.assert_allclose(x.grad.data, seed)
    assert not np.shares_memory(x.grad.data, seed)
    (g,) = engine.grad(x, x, grad_outputs=Tensor(seed))
    np.testing.assert_allclose(g.data, seed)
    y = x * 2.0
    (gy, gx) = engine.grad(y, [y, x], grad_outputs=Tensor(seed))
    np.testing.assert_allclose(gy.data, seed)
    np.testing.assert_allclose(gx.data, 2 * seed)


class Affine(Function):
    """y = x w + b, with b optional (None when absent);  gx = gy wᵀ, gw = xᵀ gy, gb = Σ gy"""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        y = x @ w
        return y if b is None else y + b

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        gb = gy.sum(axis=0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gy @ w.T, x.T @ gy, gb


def test_absent_optional_input_is_passed_as_none_on_the_numpy_path(monkeypatch):
    def no_device_check(op, arrays):
        raise AssertionError(f"{op}: NumPy inputs and None took the device check")

    monkeypatch.setattr(function, "_check_devices", no_device_check)
    x, w = leaf(4, 3), leaf(3, 2, seed=1)
    y = Affine.apply(x, w, None)
    assert y.grad_fn.xp is np and y.grad_fn.edges[2] is None
    assert y.grad_fn.needs_input_grad == (True, True, False)
    y.sum().backward()
    np.testing.assert_allclose(w.grad.data, x.data.T @ np.ones((4, 2)))
    b = leaf(2, seed=2)
    assert engine.gradcheck(lambda x, w, b: Affine.apply(x, w, b), [x, w, b])
    assert engine.gradcheck(lambda x, w: Affine.apply(x, w, None), [x, w])


def test_output_tensors_have_every_attribute_tensor_make_sets():
    """apply builds its common-case output inline: it must match Tensor._make."""
    x = leaf(3)
    reference = Tensor._make(x.data, None, 0)
    for out in (x * 2.0, Tensor(np.ones(3)) * 2.0, x.exp(), *engine.chunk(x, 3)):
        for name in Tensor.__slots__:
            if name != "__weakref__":
                assert hasattr(out, name) == hasattr(reference, name), name
        assert out.grad is None and out.requires_grad == (out._node is not None)


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda t: pickle.loads(pickle.dumps(t))],
                         ids=["deepcopy", "pickle"])
def test_copies_of_a_leaf_get_their_own_accumulator(clone):
    x = leaf(3)
    y = x * 2.0                        # x's accumulator is alive while y lives
    twin = clone(x)
    assert twin.requires_grad and twin.grad is None
    (twin * 3.0).sum().backward()
    np.testing.assert_allclose(twin.grad.data, np.full(3, 3.0))
    assert x.grad is None
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, np.full(3, 2.0))


def test_retain_grad_on_outputs_of_a_multi_output_op_and_under_create_graph():
    x = leaf(6)
    a, b, c = engine.chunk(x, 3)
    b.retain_grad()
    (a * 2.0 + b * 3.0).sum().backward()
    np.testing.assert_allclose(b.grad.data, np.full(2, 3.0))
    assert a.grad is None and c.grad is None
    h = x * x
    h.retain_grad()
    (h * h).sum().backward(create_graph=True)
    assert h.grad.requires_grad
    np.testing.assert_allclose(h.grad.data, 2 * h.data)
    x.retain_grad()                    # a leaf keeps its gradient anyway
    assert x.grad is not None


def test_engine_grad_leaves_leaf_gradients_alone_even_through_shared_accumulators():
    x = leaf(3)
    y = x * x
    z = x * 3.0
    (gx,) = engine.grad((y + z).sum(), x, retain_graph=True)
    np.testing.assert_allclose(gx.data, 2 * x.data + 3.0)
    assert x.grad is None
    (y + z).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data + 3.0)
