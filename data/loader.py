"""``DataLoader``: batches of a dataset, shuffled reproducibly, collated into Tensors.

One pass over the loader is one epoch::

    engine.manual_seed(0)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, device="cpu")
    for epoch in range(10):
        for xb, yb in loader:         # Tensors (64, ...) on the device; the last may be shorter
            ...

The shuffling order is drawn from the engine generator when an epoch starts (``iter``), so
``engine.manual_seed(s)`` reproduces the whole sequence of epochs; ``seed=`` gives the loader
its own generator instead, advanced once per epoch, so its order does not depend on (nor
disturb) other random draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

import engine
from engine import backend
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


class DataLoader:
    """Iterate over ``dataset`` in batches.

    Args:
        dataset: a :class:`data.Dataset` or anything with ``__getitem__`` and ``__len__``.
        batch_size: samples per batch.
        shuffle: a new random order every epoch (each ``iter(loader)``).
        drop_last: drop the last batch when it is shorter than ``batch_size``.
        collate_fn: ``list of samples -> batch``; default :func:`default_collate`.
        device: move every Tensor of each batch there (``'cpu'``, ``'cuda'``, ``'cuda:N'``).
        seed: shuffle with a private ``np.random.default_rng(seed)`` advanced once per epoch,
            instead of the engine generator.
        sampler: an iterable of indices read once per epoch (say, a distributed sampler);
            replaces ``shuffle``. ``len(loader)`` needs ``len(sampler)``.

    ``TensorDataset`` (and its ``Subset`` s) are gathered a batch at a time with one indexing
    call per array when ``collate_fn`` is None; the result equals the per-sample path.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, collate_fn: Callable | None = None, device=None,
                 seed: int | None = None, *, sampler: Iterable[int] | None = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got "
                             f"{batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive; "
                             "let the sampler decide the order")
        if sampler is not None and seed is not None:
            raise ValueError("DataLoader: seed only applies to shuffle=True, not to a sampler")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.device = None if device is None else backend.parse_device(device)
        self.seed = seed
        self.sampler = sampler
        self._rng = None if seed is None else np.random.default_rng(seed)
        self._fetch = batch_fetcher(dataset) if collate_fn is None else None

    def __len__(self) -> int:
        if self.sampler is not None:
            if not hasattr(self.sampler, "__len__"):
                raise TypeError("DataLoader: len() needs a sampler that has len()")
            n = len(self.sampler)
        else:
            n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _epoch_order(self):
        """This epoch's sample indices: drawn now, when the epoch starts."""
        if self.sampler is not None:
            return iter(self.sampler)
        n = len(self.dataset)
        if self.shuffle:
            rng = self._rng if self._rng is not None else engine.default_generator()
            return rng.permutation(n)
        return np.arange(n)

    def _index_batches(self, order):
        """Batches of indices as int64 arrays."""
        bs = self.batch_size
        if isinstance(order, np.ndarray):
            stop = len(order) - len(order) % bs if self.drop_last else len(order)
            for start in range(0, stop, bs):
                yield order[start:start + bs]
            return
        chunk = []
        for index in order:
            chunk.append(int(index))
            if len(chunk) == bs:
                yield np.asarray(chunk, dtype=np.int64)
                chunk = []
        if chunk and not self.drop_last:
            yield np.asarray(chunk, dtype=np.int64)

    def _batches(self, order):
        collate = self.collate_fn or default_collate
        for indices in self._index_batches(order):
            if self._fetch is not None:
                batch = self._fetch(indices)
            else:
                batch = collate([self.dataset[int(i)] for i in indices])
            yield batch if self.device is None else move_to_device(batch, self.device)

    def __iter__(self):
        return self._batches(self._epoch_order())

    def __repr__(self) -> str:
        return (f"DataLoader(len(dataset)={len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, device={self.device})")
