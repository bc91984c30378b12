"""Schedulers against torch.optim.lr_scheduler: the same learning rates, step for step."""

import math

import numpy as np
import pytest

import engine
import optim
from optim import lr_scheduler as ours_lr

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
theirs_lr = torch.optim.lr_scheduler

STEPS = 30


def _optimizers():
    p = engine.tensor([1.0], requires_grad=True)
    q = engine.tensor([2.0], requires_grad=True)
    tp = torch.tensor([1.0], requires_grad=True)
    tq = torch.tensor([2.0], requires_grad=True)
    ours = optim.SGD([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1, momentum=0.9)
    theirs = torch.optim.SGD([{"params": [tp]}, {"params": [tq], "lr": 0.5}], lr=0.1,
                             momentum=0.9)
    return ours, theirs


def _step_fn(c, t):
    return lambda epoch: 0.95 ** epoch if c == 0 else 1.0 / (1 + t * epoch)


SCHEDULES = {
    "StepLR": lambda lib, opt: lib.StepLR(opt, step_size=4, gamma=0.5),
    "MultiStepLR": lambda lib, opt: lib.MultiStepLR(opt, milestones=[3, 7, 7, 12], gamma=0.3),
    "ExponentialLR": lambda lib, opt: lib.ExponentialLR(opt, gamma=0.9),
    "CosineAnnealingLR": lambda lib, opt: lib.CosineAnnealingLR(opt, T_max=10, eta_min=0.01),
    "CosineAnnealingLR-0": lambda lib, opt: lib.CosineAnnealingLR(opt, T_max=7),
    "LinearLR": lambda lib, opt: lib.LinearLR(opt),
    "LinearLR-decay": lambda lib, opt: lib.LinearLR(opt, start_factor=1.0, end_factor=0.1,
                                                    total_iters=10),
    "LambdaLR": lambda lib, opt: lib.LambdaLR(opt, lambda epoch: 0.95 ** epoch),
    "LambdaLR-list": lambda lib, opt: lib.LambdaLR(opt, [_step_fn(0, 0.1), _step_fn(1, 0.2)]),
    "SequentialLR-warmup-cosine": lambda lib, opt: lib.SequentialLR(
        opt, [lib.LinearLR(opt, start_factor=0.1, total_iters=5),
              lib.CosineAnnealingLR(opt, T_max=20)], milestones=[5]),
    "SequentialLR-three": lambda lib, opt: lib.SequentialLR(
        opt, [lib.ExponentialLR(opt, gamma=0.8), lib.StepLR(opt, step_size=3),
              lib.LambdaLR(opt, lambda e: 1.0 / (e + 1))], milestones=[4, 11]),
}


def _run(lib, opt, sched, steps):
    lrs = [sched.get_last_lr()]
    for _ in range(steps):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr())
    return lrs


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_learning_rates_match_torch(name):
    opt, topt = _optimizers()
    sched, tsched = SCHEDULES[name](ours_lr, opt), SCHEDULES[name](theirs_lr, topt)
    ours = _run(ours_lr, opt, sched, STEPS)
    theirs = _run(theirs_lr, topt, tsched, STEPS)
    np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=1e-15, atol=0)
    assert [g["lr"] for g in opt.param_groups] == ours[-1]
    assert len({tuple(lr) for lr in ours}) > 1


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_state_dict_round_trip_continues_the_schedule(name, tmp_path):
    opt, _ = _optimizers()
    sched = SCHEDULES[name](ours_lr, opt)
    straight = _run(ours_lr, opt, sched, STEPS)
    opt, _ = _optimizers()
    sched = SCHEDULES[name](ours_lr, opt)
    first = _run(ours_lr, opt, sched, 12)
    engine.save({"opt": opt.state_dict(), "sched": sched.state_dict()},
                tmp_path / "ckpt.safetensors")
    opt2, _ = _optimizers()
    sched2 = SCHEDULES[name](ours_lr, opt2)
    ckpt = engine.load(tmp_path / "ckpt.safetensors")
    opt2.load_state_dict(ckpt["opt"])
    sched2.load_state_dict(ckpt["sched"])
    rest = _run(ours_lr, opt2, sched2, STEPS - 12)
    assert first + rest[1:] == straight


def test_cosine_follows_the_closed_form():
    opt, _ = _optimizers()
    sched = ours_lr.CosineAnnealingLR(opt, T_max=10, eta_min=0.01)
    lrs = _run(ours_lr, opt, sched, 10)
    closed = [0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(11)]
    np.testing.assert_allclose([lr[0] for lr in lrs], closed, rtol=1e-12)


def test_linear_warmup_reaches_the_base_rate():
    opt, _ = _optimizers()
    sched = ours_lr.LinearLR(opt, start_factor=0.25, total_iters=4)
    lrs = [lr[0] for lr in _run(ours_lr, opt, sched, 6)]
    np.testing.assert_allclose(lrs, [0.025, 0.04375, 0.0625, 0.08125, 0.1, 0.1, 0.1],
                               rtol=1e-12)


def test_scheduler_errors():
    opt, _ = _optimizers()
    with pytest.raises(TypeError, match="StepLR: list is not an Optimizer"):
        ours_lr.StepLR([], step_size=2)
    with pytest.raises(ValueError, match=r"LinearLR: start_factor must lie in \(0, 1\]"):
        ours_lr.LinearLR(opt, start_factor=0.0)
    with pytest.raises(KeyError, match="'initial_lr' is not specified in param_groups"):
        ours_lr.ExponentialLR(optim.SGD([engine.tensor([1.0], requires_grad=True)]),
                              gamma=0.5, last_epoch=3)
    with pytest.raises(ValueError, match="one milestone fewer than schedulers"):
        ours_lr.SequentialLR(opt, [ours_lr.ExponentialLR(opt, 0.9)], milestones=[3])
    other, _ = _optimizers()
    with pytest.raises(ValueError, match="belongs to a different optimizer"):
        ours_lr.SequentialLR(opt, [ours_lr.ExponentialLR(other, 0.9)], milestones=[])
    with pytest.raises(ValueError, match="expected 2 lr_lambdas, got 1"):
        ours_lr.LambdaLR(opt, [lambda e: 1.0])
