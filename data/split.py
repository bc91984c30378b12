"""``train_test_split`` with scikit-learn's semantics, stratification included.

Sizes follow scikit-learn: a float ``test_size`` takes ``ceil(test_size * n)`` samples, a
float ``train_size`` ``floor(train_size * n)``, integers are counts, and a missing size is
the complement of the other. Stratified splits give every class its share of both sides
(scikit-learn's ``StratifiedShuffleSplit``: an approximate multivariate-hypergeometric mode
with ties broken at random). With an integer ``seed`` / ``random_state`` the split is exactly
the one ``sklearn.model_selection.train_test_split(random_state=seed)`` returns; without
one it is drawn from the engine generator (``engine.manual_seed``).
"""

from __future__ import annotations

import math

import numpy as np

import engine
from engine import backend
from engine.tensor import Tensor

_DEFAULT_TEST_SIZE = 0.2


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_float(v) -> bool:
    return isinstance(v, (float, np.floating))


def split_sizes(n: int, test_size=None, train_size=None) -> tuple[int, int]:
    """``(n_train, n_test)`` for ``n`` samples, as scikit-learn computes them."""
    if test_size is None and train_size is None:
        test_size = _DEFAULT_TEST_SIZE
    for name, v in (("test_size", test_size), ("train_size", train_size)):
        if v is None:
            continue
        if not (_is_int(v) or _is_float(v)):
            raise ValueError(f"train_test_split: invalid value for {name}: {v!r}")
        if (_is_int(v) and not 0 < v < n) or (_is_float(v) and not 0.0 < v < 1.0):
            raise ValueError(
                f"train_test_split: {name}={v} should be either positive and smaller than "
                f"the number of samples {n} or a float in the (0, 1) range"
            )
    if _is_float(test_size) and _is_float(train_size) and test_size + train_size > 1:
        raise ValueError(
            f"train_test_split: test_size + train_size = {test_size + train_size} exceeds 1"
        )
    n_test = n_train = None
    if test_size is not None:
        n_test = math.ceil(test_size * n) if _is_float(test_size) else int(test_size)
    if train_size is not None:
        n_train = math.floor(train_size * n) if _is_float(train_size) else int(train_size)
    if n_train is None:
        n_train = n - n_test
    elif n_test is None:
        n_test = n - n_train
    if n_train + n_test > n:
        raise ValueError(
            f"train_test_split: train size {n_train} + test size {n_test} exceeds the "
            f"{n} samples; reduce test_size and/or train_size"
        )
    if n_train == 0:
        raise ValueError(
            f"train_test_split: with n_samples={n}, test_size={test_size} and "
            f"train_size={train_size} the train set would be empty"
        )
    return n_train, n_test


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng) -> np.ndarray:
    """Per-class draw counts near the mode of the multivariate hypergeometric.

    Floors of the proportional shares, then the missing draws go to the largest remainders,
    ties broken at random (scikit-learn's ``_approximate_mode``).
    """
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(np.int64)


def _stratified_indices(y: np.ndarray, n_train: int, n_test: int, rng):
    if y.ndim == 2:   # multi-label rows: one class per distinct row
        y = np.array([" ".join(row.astype("str")) for row in y])
    classes, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    if class_counts.min() < 2:
        raise ValueError(
            "train_test_split: stratify needs at least 2 members per class; classes "
            f"{classes[class_counts < 2].tolist()} have only 1"
        )
    for name, size in (("train", n_train), ("test", n_test)):
        if size < len(classes):
            raise ValueError(
                f"train_test_split: the {name} size {size} is smaller than the number of "
                f"classes {len(classes)}, so some class could not appear in it"
            )
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train, test = [], []
    for i in range(len(classes)):
        members = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(members[:n_i[i]])
        test.extend(members[n_i[i]:n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def _take(a, indices: np.ndarray):
    if isinstance(a, Tensor):
        xp = backend.array_module(a.data)
        return Tensor._make(a.data[xp.asarray(indices)], None, 0)
    if isinstance(a, np.ndarray) or backend.is_cuda_array(a):
        return a[backend.array_module(a).asarray(indices)]
    if isinstance(a, tuple):
        return tuple(a[int(i)] for i in indices)
    return [a[int(i)] for i in indices]


def train_test_split(*arrays, test_size=None, train_size=None, shuffle: bool = True,
                     stratify=None, seed: int | None = None,
                     random_state: int | None = None) -> list:
    """Split arrays into random train and test parts: ``x_tr, x_te, y_tr, y_te = ...(x, y)``.

    Args:
        arrays: NumPy/CuPy arrays, Tensors, lists or tuples of equal length; each comes back
            as the same kind (train part, then test part, for each array in order).
        test_size, train_size: a fraction in (0, 1) or a count; the test part defaults to
            0.2 (the article's 80/20 split) when neither is given.
        shuffle: when False, the first ``n_train`` samples train and the next ``n_test``
            test (no stratification possible).
        stratify: class labels (length n, or (n, k) multi-label rows): each class keeps its
            proportion on both sides.
        seed / random_state: the same thing under two names (reproduces scikit-learn).
    """
    if not arrays:
        raise ValueError("train_test_split: at least one array is required")
    if seed is not None and random_state is not None and seed != random_state:
        raise ValueError("train_test_split: seed and random_state are aliases; give one")
    seed = seed if seed is not None else random_state
    lengths = [len(a) for a in arrays]
    if len(set(lengths)) > 1:
        raise ValueError(f"train_test_split: arrays have different lengths {lengths}")
    n = lengths[0]
    n_train, n_test = split_sizes(n, test_size, train_size)
    if not shuffle:
        if stratify is not None:
            raise ValueError("train_test_split: stratify requires shuffle=True")
        train = np.arange(n_train)
        test = np.arange(n_train, n_train + n_test)
    else:
        # RandomState for an explicit seed reproduces scikit-learn's split exactly.
        rng = engine.default_generator() if seed is None else np.random.RandomState(seed)
        if stratify is not None:
            y = stratify.numpy() if isinstance(stratify, Tensor) else np.asarray(
                backend.to_numpy(stratify) if backend.is_cuda_array(stratify) else stratify)
            if len(y) != n:
                raise ValueError(
                    f"train_test_split: stratify has {len(y)} labels for {n} samples"
                )
            train, test = _stratified_indices(y, n_train, n_test, rng)
        else:
            permutation = rng.permutation(n)
            test = permutation[:n_test]
            train = permutation[n_test:n_test + n_train]
    out = []
    for a in arrays:
        out.extend((_take(a, train), _take(a, test)))
    return out
