"""Version counters (engine.versions): one per memory, shared by every tensor on it, and
backward's check that what a node saved was not written in place since it was saved."""

import gc

import numpy as np
import pytest

import engine
from engine import versions

MODIFIED = "modified by an inplace operation"


def test_a_counter_per_memory_shared_by_views_and_aliases():
    x = engine.zeros(2, 3)
    views = [x[1], x[:, 1:], x.reshape(6), x.T, x.detach(), engine.from_numpy(x.data),
             x[0][1]]
    assert x._version == 0 and all(v._version == 0 for v in views)
    versions.bump(views[1].data)
    assert x._version == 1 and all(v._version == 1 for v in views)
    versions.bump(x.data)
    assert all(v._version == 2 for v in views)
    copies = [x + 0.0, x.reshape(6)[::-1] * 1.0, engine.tensor(x), x[np.array([0, 1])]]
    assert all(c._version == 0 for c in copies)


def test_the_entry_goes_with_the_memory():
    before = len(versions.table)
    x = engine.zeros(4)
    v = x[1:]
    versions.bump(v.data)
    assert len(versions.table) == before + 1
    del x
    gc.collect()
    assert len(versions.table) == before + 1        # the view keeps the memory alive
    del v
    gc.collect()
    assert len(versions.table) == before


def test_memory_never_written_costs_no_entry_and_no_record():
    gc.collect()
    assert not versions.table         # earlier tests' written memory is gone with them
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    assert y.grad_fn.saved_at is None
    keep = engine.zeros(1)
    versions.bump(keep.data)
    z = x.exp()
    assert z.grad_fn.saved_at == versions.writes[0]
    (y + z).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([1.0, 2.0]), rtol=1e-6)


def test_the_version_at_saving_is_exact_up_to_the_history_kept():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    a = x * 1.0
    for _ in range(3):
        versions.bump(a.data)
    y = a * a                         # saved at version 3
    for _ in range(2):
        versions.bump(a.data)
    with pytest.raises(RuntimeError, match="at version 5; expected version 3 instead"):
        y.sum().backward()
    b = x * 1.0
    y = b * b
    for _ in range(versions.HISTORY + 3):
        versions.bump(b.data)
    with pytest.raises(RuntimeError, match=rf"at version {versions.HISTORY + 3}; expected "
                                           rf"version 3 or lower instead"):
        y.sum().backward()


def test_writing_a_saved_input_after_saving_raises_naming_op_shape_and_versions():
    x = engine.tensor(np.ones((3, 4)), requires_grad=True)
    a = x * 2.0                       # output 0 of Mul
    y = a * a                         # Mul saves a
    versions.bump(a.data)
    with pytest.raises(RuntimeError, match=(
            r"one of the variables needed for gradient computation has been modified by an "
            r"inplace operation: \[float64 tensor of shape \(3, 4\)\], which is output 0 of "
            r"Mul, is at version 1; expected version 0 instead \(saved by Mul")):
        y.sum().backward()


def test_a_saved_leaf_and_a_saved_output():
    w = engine.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (w * w).sum()
    versions.bump(w.data)             # what an optimizer step between forward and backward does
    with pytest.raises(RuntimeError, match=r"\[float32 tensor of shape \(3,\)\] is at version "
                                           r"1; expected version 0"):
        y.backward()
    e = w.exp()                       # Exp saves its output
    versions.bump(e.data)
    versions.bump(e.data)
    with pytest.raises(RuntimeError, match=r"which is output 0 of Exp, is at version 2; "
                                           r"expected version 0"):
        e.sum().backward()


def test_writes_before_the_save_or_to_unsaved_memory_are_fine():
    x = engine.tensor([1.0, -2.0], requires_grad=True)
    a = x * 3.0
    versions.bump(a.data)             # before anything saved it
    y = a * a                         # saved at version 1
    b = x + 1.0
    z = b + 2.0                       # Add saves nothing
    versions.bump(b.data)
    (y.sum() + z.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 9 * np.array([1.0, -2.0]) + 1)


def test_the_check_runs_on_every_backward_of_a_retained_graph():
    x = engine.tensor([0.5, 1.5], requires_grad=True)
    t = x.tanh()                      # Tanh saves its output t
    y = t.sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    versions.bump(x.data)             # not saved by anyone: no matter
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)
    versions.bump(t.data)
    with pytest.raises(RuntimeError, match=MODIFIED):
        engine.grad(y, x)


def test_create_graph_checks_too():
    x = engine.tensor([0.5, 1.5], requires_grad=True)
    y = (x * x * x).sum()
    (g,) = engine.grad(y, x, create_graph=True)
    versions.bump(x.data)
    with pytest.raises(RuntimeError, match=MODIFIED):
        g.sum().backward()


def test_a_view_saved_by_a_node_sees_writes_to_its_base():
    x = engine.tensor(np.arange(6.0), requires_grad=True)
    h = x * 1.0
    part = h[2:5]                     # a view of h's memory
    y = (part * part).sum()           # Mul saves the view
    versions.bump(h.data)
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.backward()
