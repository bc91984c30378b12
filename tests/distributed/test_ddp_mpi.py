"""Data parallelism on 2 ranks; run by CI as ``mpiexec -n 2 python -m pytest
tests/distributed``. Skipped in a single process.

Every assertion compares values gathered from all ranks, so both ranks pass or fail
together and none is left waiting in a collective.
"""

import os

import numpy as np
import pytest

WORLD = int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("PMI_SIZE", "1")))
pytestmark = pytest.mark.skipif(WORLD != 2, reason="run under mpiexec -n 2")

import engine  # noqa: E402
import engine.distributed as dist  # noqa: E402
import nn  # noqa: E402
import optim  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def world():
    dist.init(abort_on_exception=False)
    yield dist


def make_model():
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def make_optimizer(name, params):
    if name == "sgd":
        return optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    return optim.Adam(params, lr=0.01, weight_decay=1e-3)


def batches(steps=20, batch=8):
    rng = np.random.default_rng(42)
    return [(rng.standard_normal((batch, 5)), rng.standard_normal((batch, 3)))
            for _ in range(steps)]


def loss_fn(model, x, y):
    return ((model(engine.tensor(x)) - engine.tensor(y)) ** 2).mean()


def params_of(model):
    return [p.data.copy() for p in model.parameters()]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_two_half_batches_equal_one_full_batch(name):
    rank = dist.get_rank()
    # the reference: one process, the full batch
    engine.manual_seed(0)
    ref = make_model()
    opt = make_optimizer(name, ref.parameters())
    for x, y in batches():
        opt.zero_grad()
        loss_fn(ref, x, y).backward()
        opt.step()
    # data parallel: different initial weights per rank until the broadcast
    engine.manual_seed(0 if rank == 0 else 99)
    model = make_model()
    dist.broadcast_parameters(model)
    opt = dist.DistributedOptimizer(make_optimizer(name, model.parameters()))
    in_sync = []
    for x, y in batches():
        half = slice(rank * 4, rank * 4 + 4)
        opt.zero_grad()
        loss_fn(model, x[half], y[half]).backward()
        opt.step()
        everyone = dist._comm().allgather(params_of(model))
        in_sync.append(all(np.array_equal(a, b) for a, b in zip(*everyone)))
    assert all(in_sync), "parameters differ across ranks after some step"
    diffs = [np.max(np.abs(a - b)) for a, b in zip(params_of(model), params_of(ref))]
    assert max(dist._comm().allgather(max(diffs))) < 1e-12


@pytest.mark.timeout(120)
def test_scheduler_on_distributed_optimizer_matches_one_process():
    rank = dist.get_rank()

    def train(model, opt, shard):
        sched = optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
        for x, y in batches(steps=12):
            opt.zero_grad()
            loss_fn(model, x[shard], y[shard]).backward()
            opt.step()
            sched.step()
        return sched.get_last_lr()

    engine.manual_seed(0)
    ref = make_model()
    ref_lr = train(ref, make_optimizer("sgd", ref.parameters()), slice(0, 8))
    engine.manual_seed(0)
    model = make_model()
    opt = dist.DistributedOptimizer(make_optimizer("sgd", model.parameters()))
    lr = train(model, opt, slice(rank * 4, rank * 4 + 4))
    assert lr == ref_lr == [0.1 * 0.5 ** 3]
    diffs = [np.max(np.abs(a - b)) for a, b in zip(params_of(model), params_of(ref))]
    assert max(dist._comm().allgather(max(diffs))) < 1e-12


@pytest.mark.timeout(60)
def test_uneven_shards_weighted_by_sample_count():
    rank = dist.get_rank()
    x, y = batches(1, batch=7)[0]
    engine.manual_seed(0)
    ref = make_model()
    loss_fn(ref, x, y).backward()
    engine.manual_seed(0)
    model = make_model()
    part = slice(0, 4) if rank == 0 else slice(4, 7)             # 4 and 3 samples
    loss_fn(model, x[part], y[part]).backward()
    dist.allreduce_gradients(model.parameters(), num_samples=part.stop - part.start)
    diffs = [np.max(np.abs(p.grad.data - q.grad.data))
             for p, q in zip(model.parameters(), ref.parameters())]
    assert max(dist._comm().allgather(max(diffs))) < 1e-12


@pytest.mark.timeout(60)
def test_dropout_masks_differ_but_weights_agree():
    dist.init(seed=7, abort_on_exception=False)          # seeds 7 + rank
    model = nn.Sequential(nn.Linear(6, 64), nn.Dropout(0.5))
    dist.broadcast_parameters(model)
    out = model(engine.ones(4, 6)).data
    masks = dist._comm().allgather(out == 0)
    weights = dist._comm().allgather(params_of(model))
    assert not np.array_equal(masks[0], masks[1])
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


@pytest.mark.timeout(60)
def test_float32_and_float64_buckets_keep_their_dtype():
    a = nn.Linear(3, 2)
    b = nn.Linear(3, 2).double()
    params = list(a.parameters()) + list(b.parameters())
    rank = dist.get_rank()
    for p in params:
        p.grad = engine.Tensor(np.full(p.shape, rank + 1.0, dtype=p.dtype))
    dist.allreduce_gradients(params, bucket_bytes=16)            # several small buckets
    for p in params:
        assert p.grad.dtype == p.dtype
        np.testing.assert_array_equal(p.grad.data, np.full(p.shape, 1.5))


@pytest.mark.timeout(60)
def test_allreduce_scalar_reduces_python_numbers_alike_on_every_rank():
    rank = dist.get_rank()
    assert dist.allreduce_scalar(rank + 1) == 3 and isinstance(dist.allreduce_scalar(1), int)
    assert dist.allreduce_scalar(0 if rank == 0 else 2.5) == 2.5   # an int and a float
    assert dist.allreduce_scalar(10 * rank - 3, op="max") == 7
    assert dist.allreduce_scalar(10 * rank - 3, op="min") == -3
    with pytest.raises(ValueError, match="allreduce_scalar: op must be one of"):
        dist.allreduce_scalar(1, op="prod")
