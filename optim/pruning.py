"""Magnitude pruning (docs/formulas.md, F16 pruning): zero the weights of smallest |w| and
keep them zero.

Pruning ``module.<name>`` (a Parameter such as ``Linear.weight`` or ``Conv2d.weight``)
zeroes the chosen entries in place and registers a buffer ``<name>_mask`` of the weight's
dtype (1 = kept, 0 = pruned). The parameter stays the same Parameter object, so the
layer's forward, ``state_dict`` (which gains the mask) and any optimizer already holding
it are unchanged.

Why the zeros survive training: every optimizer of :mod:`optim` ends each ``step`` with
``finish_step``, which applies the masks again, θ ← θ ⊙ mask, to the pruned parameters it
holds. That holds whatever the update rule and its state: Adam's m and v (fed by the
gradient of a zero weight, which is generally not zero) may move a pruned weight during
the step, and the mask sets it back to exactly 0 before the next forward. Masking the
gradient instead would not be enough: momentum accumulated before pruning, or decoupled
weight decay of a restored weight, still moves it. A hand-written update loop calls
:func:`apply_masks` after its own step.

Differences from ``torch.nn.utils.prune``: PyTorch keeps ``<name>_orig`` as the
parameter and recomputes ``<name> = <name>_orig * <name>_mask`` in a forward pre-hook;
here the parameter itself holds the zeros (no re-parametrization, no hook), so its
``state_dict`` has ``<name>`` and ``<name>_mask`` instead of ``<name>_orig`` and
``<name>_mask``. The masks chosen are the same (ties in |w| aside).

    >>> import engine, nn, optim
    >>> layer = nn.Linear(4, 3)
    >>> optim.pruning.l1_unstructured(layer, "weight", amount=0.5)
    >>> int((layer.weight.numpy() == 0).sum()), layer.weight_mask.shape
    (6, (3, 4))
"""

from __future__ import annotations

import numbers
import weakref

import numpy as np

from engine import backend
from engine.tensor import Tensor

_PRUNED = weakref.WeakSet()   # modules holding at least one mask


def _parameter(module, name: str, op: str) -> Tensor:
    params = getattr(module, "_parameters", None)
    if params is None or params.get(name) is None:
        raise AttributeError(f"{op}: {type(module).__name__} has no parameter {name!r}")
    return params[name]


def _count(amount, size: int, op: str) -> int:
    """How many entries to prune: an int count, or round(amount · size) for a fraction."""
    if isinstance(amount, bool) or not isinstance(amount, (numbers.Integral, numbers.Real)):
        raise TypeError(f"{op}: amount must be an int or a float, got {amount!r}")
    if isinstance(amount, numbers.Integral):
        if amount < 0:
            raise ValueError(f"{op}: amount={amount} must be a non-negative integer")
        if amount > size:
            raise ValueError(f"{op}: amount={amount} is larger than the {size} entries "
                             "that can still be pruned")
        return int(amount)
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"{op}: amount={amount} must be a fraction in [0, 1]")
    return round(amount * size)


def _mask_of(module, name: str, p: Tensor) -> np.ndarray:
    """The current mask as a host bool array (all True when not pruned yet)."""
    mask = module._buffers.get(name + "_mask")
    if mask is None:
        return np.ones(p.shape, dtype=bool)
    return backend.to_numpy(mask.data) != 0


def _set_mask(module, name: str, p: Tensor, keep: np.ndarray) -> None:
    """Register ``keep`` as ``<name>_mask`` (weight dtype and device); zero the rest."""
    xp = backend.array_module(p.data)
    mask = backend.to_device(keep.astype(p.dtype), p.device)
    buf = module._buffers.get(name + "_mask")
    if buf is None:
        module.register_buffer(name + "_mask", Tensor._make(mask, None, 0))
    else:
        buf.data = mask
    p.data[...] = xp.where(mask != 0, p.data, p.dtype.type(0))
    _PRUNED.add(module)


def _prune_smallest(scores: np.ndarray, keep: np.ndarray, amount, op: str) -> np.ndarray:
    """``keep`` with the ``amount`` smallest scores among the kept entries switched off."""
    candidates = np.flatnonzero(keep.reshape(-1))
    k = _count(amount, candidates.size, op)
    new = keep.reshape(-1).copy()
    if k:
        order = np.argsort(scores.reshape(-1)[candidates], kind="stable")
        new[candidates[order[:k]]] = False
    return new.reshape(keep.shape)


def l1_unstructured(module, name: str = "weight", amount=0.3) -> None:
    """Prune the ``amount`` entries of ``module.<name>`` with the smallest |w|.

    ``amount``: a fraction in [0, 1] (of the entries not pruned yet, rounded) or an int
    count. Pruning again prunes further among the remaining entries, as PyTorch does.
    """
    op = "l1_unstructured"
    p = _parameter(module, name, op)
    w = backend.to_numpy(p.data)
    _set_mask(module, name, p, _prune_smallest(np.abs(w), _mask_of(module, name, p),
                                               amount, op))


def global_unstructured(parameters, amount=0.3) -> None:
    """Prune the ``amount`` smallest-|w| entries across all ``(module, name)`` pairs at
    once (one threshold for all, so layers lose different fractions)."""
    op = "global_unstructured"
    pairs = list(parameters)
    if not pairs:
        raise ValueError(f"{op}: no (module, name) pairs given")
    params = [_parameter(m, n, op) for m, n in pairs]
    scores = np.concatenate([np.abs(backend.to_numpy(p.data)).reshape(-1).astype(np.float64)
                             for p in params])
    keep = np.concatenate([_mask_of(m, n, p).reshape(-1) for (m, n), p in zip(pairs, params)])
    keep = _prune_smallest(scores, keep, amount, op)
    start = 0
    for (m, n), p in zip(pairs, params):
        _set_mask(m, n, p, keep[start:start + p.numel()].reshape(p.shape))
        start += p.numel()


def identity(module, name: str = "weight") -> None:
    """Register an all-ones mask (nothing pruned): the form a pruned checkpoint is loaded
    into, as ``torch.nn.utils.prune.identity``."""
    p = _parameter(module, name, "identity")
    _set_mask(module, name, p, np.ones(p.shape, dtype=bool))


def is_pruned(module) -> bool:
    """True if ``module`` or one of its sub-modules holds a pruning mask."""
    return any(_masked_names(m) for m in module.modules())


def remove(module, name: str = "weight") -> None:
    """Make the pruning permanent: drop ``<name>_mask``; the zeros stay in the weight but
    are no longer enforced."""
    if name + "_mask" not in module._buffers:
        raise ValueError(f"remove: parameter {name!r} of {type(module).__name__} is not "
                         "pruned")
    apply_masks(module.parameters(recurse=False))
    del module._buffers[name + "_mask"]
    if not _masked_names(module):
        _PRUNED.discard(module)


def _masked_names(module) -> list[str]:
    return [n[:-5] for n, b in module._buffers.items()
            if n.endswith("_mask") and b is not None and
            module._parameters.get(n[:-5]) is not None]


def apply_masks(parameters=None) -> None:
    """θ ← θ ⊙ mask for every pruned parameter (among ``parameters``, if given). Every
    optimizer calls this at the end of its step (``Optimizer.finish_step``)."""
    if not _PRUNED:
        return
    wanted = None if parameters is None else set(parameters)
    for module in list(_PRUNED):
        for name in _masked_names(module):
            p = module._parameters[name]
            if wanted is not None and p not in wanted:
                continue
            mask = module._buffers[name + "_mask"].data
            xp = backend.array_module(p.data)
            p.data[...] = xp.where(mask != 0, p.data, p.dtype.type(0))
