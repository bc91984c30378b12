"""Datasets: the abstract ``Dataset``, ``TensorDataset``, ``Subset`` and ``random_split``.

A dataset is anything with ``__getitem__(i)`` and ``__len__()`` (a list of pairs works too);
:class:`Dataset` is the base class to subclass for your own. ``TensorDataset`` and
a ``Subset`` of it are fetched by the :class:`data.DataLoader` a whole batch at a time (one
fancy-indexing call per array instead of one ``__getitem__`` per sample): any dataset that
defines ``get_batch(indices) -> batch`` gets that fast path (see :func:`batch_fetcher`).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import numpy as np

import engine
from engine import backend
from engine.tensor import Tensor


class Dataset(abc.ABC):
    """A map-style dataset: ``dataset[i]`` is sample ``i`` and ``len(dataset)`` the count.

    Subclass it and define both methods::

        class Squares(Dataset):
            def __len__(self):
                return 100
            def __getitem__(self, i):
                return np.float32(i), np.float32(i * i)
    """

    @abc.abstractmethod
    def __getitem__(self, index):
        """Sample ``index`` (0 <= index < len(self))."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of samples."""


def _as_data_array(x, position: int):
    """The array behind a Tensor / ndarray / CuPy array / nested list (no copy for arrays)."""
    if isinstance(x, Tensor):
        return x.data
    if isinstance(x, np.ndarray) or backend.is_cuda_array(x):
        return x
    try:
        return engine.tensor(x).data   # Python floats -> default dtype, ints -> int64
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"TensorDataset: argument {position} of type {type(x).__name__} cannot be "
            f"turned into an array ({exc})"
        ) from None


def _row(array, index: int) -> Tensor:
    """``array[index]`` as a Tensor; ``[index, ...]`` keeps a 0-d row an array, not a scalar."""
    return Tensor._make(array[index, ...], None, 0)


class TensorDataset(Dataset):
    """Samples are the rows of equally long arrays: ``ds[i] == (a[i], b[i], ...)``.

    ``TensorDataset(*tensors)`` takes Tensors, NumPy or CuPy arrays or nested lists, all with
    the same first dimension, and keeps them without copying. Each sample is a tuple of
    Tensors (one row of each array), as in PyTorch; ``dataset.tensors`` gives the full
    Tensors back.
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        arrays = [_as_data_array(t, i) for i, t in enumerate(tensors)]
        for i, a in enumerate(arrays):
            if a.ndim == 0:
                raise ValueError(
                    f"TensorDataset: argument {i} is 0-d (shape ()); every tensor needs a "
                    "first (sample) dimension"
                )
        lengths = {a.shape[0] for a in arrays}
        if len(lengths) > 1:
            shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
            raise ValueError(
                "TensorDataset: all tensors must have the same size in the first dimension, "
                f"got shapes {shapes}"
            )
        self._arrays = arrays

    @property
    def tensors(self) -> tuple:
        """The stored arrays as Tensors (sharing memory)."""
        return tuple(Tensor._make(a, None, 0) for a in self._arrays)

    def __len__(self) -> int:
        return self._arrays[0].shape[0]

    def __getitem__(self, index):
        n = len(self)
        if not isinstance(index, (int, np.integer)):
            raise TypeError(
                f"TensorDataset: index must be an integer, got {type(index).__name__}"
            )
        if not -n <= index < n:
            raise IndexError(f"TensorDataset: index {index} is out of range for {n} samples")
        return tuple(_row(a, int(index)) for a in self._arrays)

    def get_batch(self, indices: np.ndarray) -> tuple:
        """The rows ``indices`` of every array at once, as Tensors (the loader's fast path)."""
        out = []
        for a in self._arrays:
            idx = indices if isinstance(a, np.ndarray) else backend.array_module(a).asarray(
                indices)
            out.append(Tensor._make(a[idx], None, 0))
        return tuple(out)


class Subset(Dataset):
    """The samples ``indices`` of ``dataset``, in that order: ``Subset(ds, idx)[k] == ds[idx[k]]``.
    """

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(dataset)
        bad = self.indices[(self.indices < -n) | (self.indices >= n)]
        if bad.size:
            raise IndexError(
                f"Subset: indices {bad[:5].tolist()} are out of range for a dataset of {n} "
                "samples"
            )

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]


def batch_fetcher(dataset):
    """A function ``indices -> collated batch`` for datasets that can gather a batch at once.

    That is a dataset with a ``get_batch(indices)`` method (``TensorDataset``, or your own),
    or a ``Subset`` (at any depth) of one; otherwise None and the loader calls
    ``dataset[i]`` per sample.
    """
    if isinstance(dataset, Subset):
        inner = batch_fetcher(dataset.dataset)
        if inner is None:
            return None
        parent_indices = dataset.indices
        return lambda indices: inner(parent_indices[indices])
    get_batch = getattr(dataset, "get_batch", None)
    return get_batch if callable(get_batch) else None


def _split_lengths(n: int, lengths) -> list[int]:
    """Integer lengths; fractions summing to 1 become floors plus a round-robin remainder."""
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths is empty")
    total = sum(lengths)
    if all(isinstance(v, (int, np.integer)) for v in lengths):
        counts = [int(v) for v in lengths]
    elif math.isclose(total, 1.0) and total <= 1.0:
        counts = []
        for i, frac in enumerate(lengths):
            if not 0.0 <= frac <= 1.0:
                raise ValueError(f"random_split: fraction at index {i} ({frac}) is not in [0, 1]")
            counts.append(int(math.floor(n * frac)))
        for i in range(n - sum(counts)):   # as PyTorch: the remainder goes round-robin
            counts[i % len(counts)] += 1
    else:
        raise ValueError(
            f"random_split: lengths {lengths} must be integers summing to the dataset size "
            f"({n}) or fractions summing to 1"
        )
    if any(c < 0 for c in counts):
        raise ValueError(f"random_split: negative length in {lengths}")
    if sum(counts) != n:
        raise ValueError(
            f"random_split: lengths {lengths} sum to {sum(counts)}, but the dataset has "
            f"{n} samples"
        )
    return counts


def random_split(dataset, lengths, seed: int | None = None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random ``Subset`` s of the given sizes.

    ``lengths`` holds integers summing to ``len(dataset)``, or fractions summing to 1 (each
    split gets ``floor(n * frac)`` samples and the remainder is dealt one by one to the first
    splits, as PyTorch does). The permutation comes from the engine generator
    (``engine.manual_seed``) unless ``seed`` is given.
    """
    n = len(dataset)
    counts = _split_lengths(n, lengths)
    rng = engine.default_generator() if seed is None else np.random.default_rng(seed)
    perm = rng.permutation(n)
    bounds = np.cumsum([0] + counts)
    return [Subset(dataset, perm[bounds[k]:bounds[k + 1]]) for k in range(len(counts))]
