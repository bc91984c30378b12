"""DistributedOptimizer in one process: schedulers and the Optimizer interface reach the
wrapped optimizer (the gradient averaging itself is tested on 2 ranks in test_ddp_mpi)."""

import pytest

import engine.distributed as dist
import nn
import optim
from optim import lr_scheduler

SCHEDULES = {
    "step": lambda opt: lr_scheduler.StepLR(opt, step_size=2, gamma=0.5),
    "multistep": lambda opt: lr_scheduler.MultiStepLR(opt, milestones=[1, 4], gamma=0.3),
    "exponential": lambda opt: lr_scheduler.ExponentialLR(opt, gamma=0.9),
    "cosine": lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=5, eta_min=0.01),
    "lambda": lambda opt: lr_scheduler.LambdaLR(opt, lambda epoch: 1.0 / (1 + epoch)),
    "warmup_cosine": lambda opt: lr_scheduler.SequentialLR(
        opt, [lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=3),
              lr_scheduler.CosineAnnealingLR(opt, T_max=4)], milestones=[3]),
}


def two_groups(model):
    return [{"params": [model.weight]}, {"params": [model.bias], "lr": 0.05}]


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedulers_drive_the_wrapped_optimizer_like_a_plain_one(name):
    plain = optim.SGD(two_groups(nn.Linear(3, 2)), lr=0.1, momentum=0.9)
    inner = optim.SGD(two_groups(nn.Linear(3, 2)), lr=0.1, momentum=0.9)
    wrapped = dist.DistributedOptimizer(inner)
    expected, got = SCHEDULES[name](plain), SCHEDULES[name](wrapped)
    for _ in range(8):
        assert got.get_last_lr() == expected.get_last_lr()
        assert [g["lr"] for g in inner.param_groups] == expected.get_last_lr()
        expected.step()
        got.step()
    assert got.state_dict() == expected.state_dict()


def test_wrapper_is_an_optimizer_and_forwards_its_interface():
    model = nn.Linear(3, 2)
    inner = optim.Adam(model.parameters(), lr=1e-3)
    wrapped = dist.DistributedOptimizer(inner)
    assert isinstance(wrapped, optim.Optimizer)
    assert wrapped.param_groups is inner.param_groups and wrapped.state is inner.state
    assert wrapped.defaults is inner.defaults
    extra = nn.Linear(2, 2)
    wrapped.add_param_group({"params": list(extra.parameters()), "lr": 0.5})
    assert len(inner.param_groups) == 2 and inner.param_groups[1]["lr"] == 0.5
    assert inner.param_groups[1]["params"] == [extra.weight, extra.bias]
