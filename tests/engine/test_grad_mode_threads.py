"""Grad mode and anomaly mode are per thread, as in PyTorch.

A new thread starts with grad enabled and anomaly checks off, whatever the thread that
started it is doing; ``no_grad``, ``enable_grad``, ``set_grad_enabled`` and
``detect_anomaly`` in one thread never change what another thread records or checks.
The threads are interleaved in a fixed order with events, so each test is deterministic.
"""

import threading

import numpy as np
import pytest

import engine
from engine import Function, Tensor

TIMEOUT = 10.0   # seconds any thread waits for its partner before the test fails


def run_threads(*targets):
    """Run each target in its own thread; re-raise the first exception one of them raised."""
    errors = []

    def guarded(target):
        try:
            target()
        except BaseException as exc:   # noqa: BLE001 - reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive(), "a thread did not finish (deadlock?)"
    if errors:
        raise errors[0]


def wait(event):
    assert event.wait(TIMEOUT), "the partner thread never signalled"


def leaf(seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(3), requires_grad=True)


def test_training_thread_backward_beside_no_grad_evaluation_thread():
    evaluating, trained = threading.Event(), threading.Event()
    x = leaf()
    seen = {}

    def evaluation():
        with engine.no_grad():
            evaluating.set()
            wait(trained)                      # stays in no_grad while the other trains
            seen["eval_records"] = (x * 2.0).requires_grad

    def training():
        wait(evaluating)
        try:
            loss = (x * x).sum()
            seen["train_records"] = loss.requires_grad
            loss.backward()
        finally:
            trained.set()

    run_threads(evaluation, training)
    assert seen == {"eval_records": False, "train_records": True}
    np.testing.assert_allclose(x.grad.data, 2 * x.data)


def test_overlapping_no_grad_blocks_in_two_threads_leave_recording_on():
    """A enters, B enters, A exits, B exits: with one process-wide flag B would restore
    the False that A had set, and recording would stay off for everyone."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def thread_a():
        with engine.no_grad():
            a_in.set()
            wait(b_in)
        a_out.set()
        seen["a_after"] = engine.is_grad_enabled()

    def thread_b():
        wait(a_in)
        with engine.no_grad():
            b_in.set()
            wait(a_out)
            seen["b_inside"] = engine.is_grad_enabled()
        seen["b_after"] = engine.is_grad_enabled()

    run_threads(thread_a, thread_b)
    assert seen == {"a_after": True, "b_inside": False, "b_after": True}
    assert engine.is_grad_enabled()
    assert (leaf() * 2.0).requires_grad


def test_new_thread_starts_with_grad_on_and_anomaly_off():
    seen = {}

    def child():
        seen["grad"] = engine.is_grad_enabled()
        seen["records"] = (leaf() * 2.0).requires_grad
        with np.errstate(invalid="ignore"):
            seen["nan_passes"] = bool(np.isnan(engine.log(Tensor([-1.0])).data).all())

    with engine.no_grad(), engine.detect_anomaly():
        run_threads(child)
        assert not engine.is_grad_enabled()
    assert seen == {"grad": True, "records": True, "nan_passes": True}


def test_enable_grad_and_set_grad_enabled_stay_in_their_thread():
    inside, checked = threading.Event(), threading.Event()
    seen = {}

    def switching():
        with engine.no_grad():
            with engine.enable_grad():
                seen["enabled_inside_no_grad"] = (leaf() * 2.0).requires_grad
            with engine.set_grad_enabled(False):
                inside.set()
                wait(checked)

    def other():
        wait(inside)
        try:
            seen["other"] = engine.is_grad_enabled() and (leaf() * 2.0).requires_grad
        finally:
            checked.set()

    with engine.no_grad():
        run_threads(switching, other)
    assert seen == {"enabled_inside_no_grad": True, "other": True}


def test_detect_anomaly_in_one_thread_does_not_check_another():
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def checking():
        with engine.detect_anomaly():
            inside.set()
            wait(done)
            with pytest.raises(FloatingPointError, match="Log forward produced NaN"):
                with np.errstate(invalid="ignore"):
                    engine.log(Tensor([-1.0]))
            seen["checked"] = True

    def unchecked():
        wait(inside)
        try:
            with np.errstate(invalid="ignore"):
                seen["nan_passes"] = bool(np.isnan(engine.log(Tensor([-1.0])).data).all())
        finally:
            done.set()

    run_threads(checking, unchecked)
    assert seen == {"checked": True, "nan_passes": True}


class Pause(Function):
    """y = x;  gx = gy, with a backward that waits for another thread."""

    entered = None
    resume = None

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, gy):
        Pause.entered.set()
        wait(Pause.resume)
        return gy


def test_forward_in_one_thread_records_while_another_runs_backward():
    """A first-order backward turns recording off in its own thread only."""
    Pause.entered, Pause.resume = threading.Event(), threading.Event()
    x = leaf()
    seen = {}

    def backward_thread():
        Pause.apply(x * 3.0).sum().backward()

    def forward_thread():
        wait(Pause.entered)
        try:
            seen["records"] = (leaf(1) * 2.0).requires_grad
        finally:
            Pause.resume.set()

    run_threads(backward_thread, forward_thread)
    assert seen == {"records": True}
    np.testing.assert_allclose(x.grad.data, np.full(3, 3.0))


def test_no_grad_decorator_is_safe_across_threads():
    """One decorated function called from two threads at once, interleaved."""
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    calls = []

    @engine.no_grad()
    def evaluate(entered, proceed):
        entered.set()
        wait(proceed)
        return engine.is_grad_enabled()

    def first():
        calls.append(evaluate(first_in, second_in))
        first_out.set()
        calls.append(engine.is_grad_enabled())

    def second():
        wait(first_in)
        with engine.no_grad():
            pass
        calls.append(evaluate(second_in, first_out))
        calls.append(engine.is_grad_enabled())

    run_threads(first, second)
    assert sorted(calls) == [False, False, True, True]
    assert engine.is_grad_enabled()
