"""``DataLoader``: batches of a dataset, shuffled reproducibly, collated into Tensors.

One pass over the loader is one epoch::

    engine.manual_seed(0)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, device="cpu")
    for epoch in range(10):
        for xb, yb in loader:         # Tensors (64, ...) on the device; the last may be shorter
            ...

The shuffling order is drawn from the engine generator when an epoch starts (``iter``), so
``engine.manual_seed(s)`` reproduces the whole sequence of epochs; ``seed=`` or
``generator=`` gives the loader its own generator instead, advanced once per epoch, so its
order does not depend on (nor disturb) other random draws.

Batches are made in the calling process. PyTorch's worker options (``num_workers``,
``prefetch_factor``, ``persistent_workers``, ``worker_init_fn``, ``timeout``) are accepted
and checked as PyTorch checks them, so PyTorch code runs unchanged, but no worker process
is started: ``num_workers=4`` yields the very batches of ``num_workers=0``.

``state_dict()`` / ``load_state_dict()`` save and restore the position in the epoch (as
PyTorch's stateful loaders do): put it in a checkpoint beside ``engine.get_rng_state()``
and a resumed run gets the batches the interrupted one had left, then the same epochs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

import engine
from engine import backend, random
from engine.tensor import Tensor

from data.dataset import batch_fetcher


def _stack(arrays, what: str) -> Tensor:
    shapes = {tuple(a.shape) for a in arrays}
    if len(shapes) > 1:
        raise ValueError(
            f"default_collate: cannot stack {what} of different shapes "
            f"{sorted(shapes)}; pad them first (data.pad_sequences) or pass a collate_fn"
        )
    devices = {backend.device_of(a) for a in arrays}
    if len(devices) > 1:
        raise ValueError(f"default_collate: samples live on different devices {sorted(devices)}")
    xp = backend.array_module(arrays[0])
    return Tensor._make(xp.stack(arrays), None, 0)


def default_collate(batch: Sequence):
    """Merge a list of samples into a batch, keeping the samples' structure.

    - Tensors and NumPy/CuPy arrays are stacked along a new first axis into a Tensor; dtypes
      are kept (float32 stays float32, uint8 stays uint8).
    - NumPy scalars become a Tensor of their dtype; Python ints int64; Python bools bool;
      Python floats the engine's default dtype (float32; PyTorch would give float64).
    - Tuples, lists and namedtuples are collated position by position, dicts key by key
      (recursively); strings and bytes are returned as a list.
    """
    if len(batch) == 0:
        raise ValueError("default_collate: the batch is empty")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack([b.data for b in batch], "tensors")
    if isinstance(elem, np.ndarray) or backend.is_cuda_array(elem):
        return _stack(list(batch), "arrays")
    if isinstance(elem, np.generic):
        return Tensor._make(np.array(batch, dtype=elem.dtype), None, 0)
    if isinstance(elem, bool):
        return Tensor._make(np.array(batch, dtype=np.bool_), None, 0)
    if isinstance(elem, (int, float)):
        all_int = all(isinstance(b, int) and not isinstance(b, bool) for b in batch)
        dtype = np.int64 if all_int else engine.get_default_dtype()
        return Tensor._make(np.array(batch, dtype=dtype), None, 0)
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, Mapping):
        return {key: default_collate([sample[key] for sample in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):   # namedtuple
        return type(elem)(*(default_collate(list(field)) for field in zip(*batch)))
    if isinstance(elem, Sequence):
        sizes = {len(sample) for sample in batch}
        if len(sizes) > 1:
            raise ValueError(
                f"default_collate: samples are sequences of different lengths {sorted(sizes)}"
            )
        fields = [default_collate(list(field)) for field in zip(*batch)]
        return tuple(fields) if isinstance(elem, tuple) else fields
    raise TypeError(
        f"default_collate: cannot collate samples of type {type(elem).__name__}; expected "
        "Tensors, arrays, numbers, strings, or tuples/lists/dicts of those (or pass collate_fn)"
    )


def move_to_device(batch, device: str):
    """Every Tensor inside ``batch`` (nested tuples/lists/dicts) moved to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {key: move_to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


class _Epoch:
    """The order of one epoch and how many of its batches were handed out."""

    __slots__ = ("order", "yielded", "done")

    def __init__(self, order, yielded: int = 0):
        self.order, self.yielded, self.done = order, yielded, False


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"DataLoader: {name} must be a {kind} integer, got {value!r}")
    return int(value)


class DataLoader:
    """Iterate over ``dataset`` in batches.

    Args:
        dataset: a :class:`data.Dataset` or anything with ``__getitem__`` and ``__len__``.
        batch_size: samples per batch.
        shuffle: a new random order every epoch (each ``iter(loader)``).
        drop_last: drop the last batch when it is shorter than ``batch_size``.
        collate_fn: ``list of samples -> batch``; default :func:`default_collate`.
        device: move every Tensor of each batch there (``'cpu'``, ``'cuda'``, ``'cuda:N'``).
        seed: shuffle with a private generator seeded so, advanced once per epoch, instead
            of the engine generator.
        sampler: an iterable of indices read once per epoch (say, a distributed sampler);
            replaces ``shuffle``. ``len(loader)`` needs ``len(sampler)``.
        generator: shuffle with this :class:`engine.Generator` (or NumPy ``Generator``),
            as PyTorch's ``generator=``; it is used, not copied, so its draws advance it.
        num_workers, prefetch_factor, persistent_workers, worker_init_fn, timeout:
            PyTorch's worker options, checked as PyTorch does; batches are made in the
            calling process whatever they say, so ``worker_init_fn`` is never called (as
            in PyTorch with ``num_workers=0``) and the batches are those of
            ``num_workers=0``.
        pin_memory: accepted and recorded; no effect (there is no page-locked staging:
            with ``device='cuda'`` the batches are copied to the GPU directly).

    ``TensorDataset`` (and its ``Subset`` s) are gathered a batch at a time with one indexing
    call per array when ``collate_fn`` is None; the result equals the per-sample path.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, collate_fn: Callable | None = None, device=None,
                 seed: int | None = None, *, sampler: Iterable[int] | None = None,
                 generator: np.random.Generator | None = None, num_workers: int = 0,
                 pin_memory: bool = False, timeout: float = 0,
                 worker_init_fn: Callable | None = None, prefetch_factor: int | None = None,
                 persistent_workers: bool = False):
        batch_size = _check_count(batch_size, "batch_size", 1)
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive; "
                             "let the sampler decide the order")
        if sampler is not None and seed is not None:
            raise ValueError("DataLoader: seed only applies to shuffle=True, not to a sampler")
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(f"DataLoader: generator must be an engine.Generator (or a NumPy "
                            f"Generator), got {type(generator).__name__}")
        if generator is not None and seed is not None:
            raise ValueError("DataLoader: pass seed or generator, not both")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.device = None if device is None else backend.parse_device(device)
        self.seed = seed
        self.sampler = sampler
        self.generator = generator
        self._set_worker_options(num_workers, pin_memory, timeout, worker_init_fn,
                                 prefetch_factor, persistent_workers)
        self._rng = generator if seed is None else random.Generator().manual_seed(seed)
        self._fetch = batch_fetcher(dataset) if collate_fn is None else None
        self._epoch: _Epoch | None = None          # the epoch of the latest iterator
        self._resume: _Epoch | None = None         # set by load_state_dict

    def _set_worker_options(self, num_workers, pin_memory, timeout, worker_init_fn,
                            prefetch_factor, persistent_workers) -> None:
        """Check PyTorch's worker options as PyTorch does, and record them."""
        self.num_workers = _check_count(num_workers, "num_workers", 0)
        if prefetch_factor is not None:
            if self.num_workers == 0:
                raise ValueError("DataLoader: prefetch_factor needs num_workers > 0 (as in "
                                 "PyTorch); leave it None")
            prefetch_factor = _check_count(prefetch_factor, "prefetch_factor", 1)
        self.prefetch_factor = 2 if prefetch_factor is None and self.num_workers else \
            prefetch_factor
        if persistent_workers and self.num_workers == 0:
            raise ValueError("DataLoader: persistent_workers needs num_workers > 0 (as in "
                             "PyTorch)")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValueError(f"DataLoader: timeout must be a non-negative number, got "
                             f"{timeout!r}")
        if timeout > 0 and self.num_workers == 0:
            raise ValueError("DataLoader: timeout needs num_workers > 0 (as in PyTorch): it "
                             "bounds the wait for a worker's batch")
        if worker_init_fn is not None and not callable(worker_init_fn):
            raise TypeError(f"DataLoader: worker_init_fn must be callable, got "
                            f"{type(worker_init_fn).__name__}")
        self.timeout, self.worker_init_fn = timeout, worker_init_fn
        self.pin_memory, self.persistent_workers = bool(pin_memory), bool(persistent_workers)

    def _num_samples(self) -> int:
        if self.sampler is not None:
            if not hasattr(self.sampler, "__len__"):
                raise TypeError("DataLoader: len() needs a sampler that has len()")
            return len(self.sampler)
        return len(self.dataset)

    def __len__(self) -> int:
        n = self._num_samples()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _epoch_order(self):
        """This epoch's sample indices, drawn now, when the epoch starts: an int64 array
        (an iterator for a sampler without len)."""
        if self.sampler is not None:
            if not hasattr(self.sampler, "__len__"):
                return iter(self.sampler)
            return np.fromiter(iter(self.sampler), dtype=np.int64)
        n = len(self.dataset)
        if self.shuffle:
            rng = self._rng if self._rng is not None else engine.default_generator()
            return rng.permutation(n)
        return np.arange(n)

    def _index_batches(self, order, start: int):
        """Batches of indices as int64 arrays, from batch number ``start`` on."""
        bs = self.batch_size
        if isinstance(order, np.ndarray):
            stop = len(order) - len(order) % bs if self.drop_last else len(order)
            for first in range(start * bs, stop, bs):
                yield order[first:first + bs]
            return
        chunk = []
        for index in order:
            chunk.append(int(index))
            if len(chunk) == bs:
                yield np.asarray(chunk, dtype=np.int64)
                chunk = []
        if chunk and not self.drop_last:
            yield np.asarray(chunk, dtype=np.int64)

    def _batches(self, epoch: _Epoch, restored: _Epoch | None):
        if restored is not None and self._resume is restored:
            self._resume = None               # taken by the first iterator that runs
        collate = self.collate_fn or default_collate
        for indices in self._index_batches(epoch.order, epoch.yielded):
            if self._fetch is not None:
                batch = self._fetch(indices)
            else:
                batch = collate([self.dataset[int(i)] for i in indices])
            epoch.yielded += 1
            yield batch if self.device is None else move_to_device(batch, self.device)
        epoch.done = True

    def __iter__(self):
        """One epoch: the rest of a restored one after :meth:`load_state_dict`, else a new
        one. Iterators made but never advanced (tqdm.auto makes one in its constructor)
        leave the restored epoch to the next."""
        restored = self._resume
        self._epoch = _Epoch(self._epoch_order()) if restored is None else \
            _Epoch(restored.order, restored.yielded)
        return self._batches(self._epoch, restored)

    # ------------------------------------------------------------ position in the epoch
    def state_dict(self) -> dict:
        """Where the latest iterator stands, as arrays and plain values (``engine.save``
        stores it): ``batch_size``; ``in_epoch`` (an epoch started and not finished);
        ``batches_yielded`` and ``order`` (the epoch's sample indices) inside an epoch;
        ``generator``, the state of the loader's own generator (``seed=``/``generator=``).

        The engine generator is not included: save ``engine.get_rng_state()`` beside it.
        """
        epoch = self._epoch
        in_epoch = epoch is not None and not epoch.done
        if in_epoch and not isinstance(epoch.order, np.ndarray):
            raise TypeError("DataLoader.state_dict: the position inside an epoch needs a "
                            "sampler that has len() (its order is kept for the resume)")
        state = {"batch_size": self.batch_size, "in_epoch": in_epoch,
                 "batches_yielded": epoch.yielded if in_epoch else 0,
                 "order": epoch.order.copy() if in_epoch else np.zeros(0, dtype=np.int64)}
        if self._rng is not None:
            state["generator"] = random.pack_state(self._rng.bit_generator.state)
        return state

    def load_state_dict(self, state: Mapping) -> None:
        """Restore :meth:`state_dict`: the next ``iter`` yields the batches that were left
        in the saved epoch (in its order), the ones after it start new epochs."""
        where = "DataLoader.load_state_dict"
        for key in ("batch_size", "in_epoch") + (("order", "batches_yielded")
                                                 if state.get("in_epoch") else ()):
            if key not in state:
                raise ValueError(f"{where}: the state is missing {key!r}")
        if state["batch_size"] != self.batch_size:
            raise ValueError(f"{where}: the state was saved with batch_size "
                             f"{state['batch_size']}, this loader has batch_size "
                             f"{self.batch_size}")
        if ("generator" in state) != (self._rng is not None):
            has = "holds" if "generator" in state else "lacks"
            mine = "has" if self._rng is not None else "has no"
            raise ValueError(f"{where}: the state {has} a generator state and this loader "
                             f"{mine} generator of its own (seed= or generator=)")
        resume = self._restored_epoch(state, where) if state["in_epoch"] else None
        if self._rng is not None:
            self._rng.bit_generator.state = random.unpack_state(state["generator"], where)
        self._resume = resume

    def _restored_epoch(self, state: Mapping, where: str) -> _Epoch:
        order = state["order"]
        order = np.asarray(order.numpy() if isinstance(order, Tensor) else order,
                           dtype=np.int64)
        n = self._num_samples()
        if order.ndim != 1 or len(order) != n:
            raise ValueError(f"{where}: the state's epoch order holds {order.size} samples, "
                             f"this loader's epoch {n}")
        if n and (order.min() < 0 or order.max() >= len(self.dataset)):
            raise ValueError(f"{where}: the state's epoch order indexes outside the dataset "
                             f"of {len(self.dataset)} samples")
        yielded = int(state["batches_yielded"])
        if not 0 <= yielded <= len(self):
            raise ValueError(f"{where}: batches_yielded {yielded} is outside the epoch's "
                             f"{len(self)} batches")
        return _Epoch(order, yielded)

    def __repr__(self) -> str:
        return (f"DataLoader(len(dataset)={len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, device={self.device})")
