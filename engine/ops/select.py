"""Selecting elements: sorting (``sort``, ``argsort``, ``topk``, ``median``), triangles
(``tril``, ``triu``) and ``masked_fill``.

The sorting ops return PyTorch's named tuples ``(values, indices)`` (:data:`return_types`,
``max`` and ``min`` along a dim too); the values are gathered from the input
(:func:`engine.ops.indexing.gather`), so each gradient goes back to the element it came
from.
"""

from __future__ import annotations

import types
from collections import namedtuple

import numpy as np

from engine import backend, checks
from engine.function import Function
from engine.ops.compare import Where
from engine.ops.elementwise import astype
from engine.ops.indexing import gather
from engine.ops.utils import normalize_axis, numpy_names
from engine.tensor import Tensor


def _values_indices(name: str) -> type:
    """The named tuple ``name(values, indices)``, found by pickle as ``return_types.name``."""
    cls = namedtuple(name, ["values", "indices"])
    cls.__qualname__ = f"return_types.{name}"
    return cls


# PyTorch's ``torch.return_types`` (``engine.return_types``): ``values, indices =
# x.max(dim=1)``, or ``x.max(dim=1).indices``.
return_types = types.SimpleNamespace(
    **{name: _values_indices(name) for name in ("max", "min", "sort", "topk", "median")})


class Tril(Function):
    """y = x on and below diagonal k of the last two axes, 0 above;  gx = gy masked alike"""

    part = "tril"

    @classmethod
    def forward(cls, ctx, x, diagonal=0):
        if x.ndim < 2:
            raise ValueError(f"{cls.part}: expects at least 2 axes, got shape {x.shape}")
        ctx.diagonal = diagonal
        return getattr(ctx.xp, cls.part)(x, diagonal)

    @classmethod
    def backward(cls, ctx, gy):
        return getattr(ctx.xp, cls.part)(gy, ctx.diagonal)


class Triu(Tril):
    """y = x on and above diagonal k of the last two axes, 0 below;  gx = gy masked alike"""

    part = "triu"


def tril(input, diagonal: int = 0) -> Tensor:
    """The lower triangle (on and below ``diagonal``; > 0 above the main one) of the last
    two axes, zeros elsewhere."""
    return Tril.apply(checks.tensor("tril", "input", input), diagonal=int(diagonal))


def triu(input, diagonal: int = 0) -> Tensor:
    """The upper triangle (on and above ``diagonal``) of the last two axes, zeros
    elsewhere."""
    return Triu.apply(checks.tensor("triu", "input", input), diagonal=int(diagonal))


def masked_fill(input, mask, value) -> Tensor:
    """``value`` where ``mask`` (bool, broadcastable to the input) is True, the input
    elsewhere: y = where(mask, value, x);  gx = gy where not mask, gvalue = Σ gy over the
    mask (``value`` a number or a 0-d tensor; the result keeps the input's dtype)."""
    x = checks.tensor("masked_fill", "input", input)
    m = checks.array_on("masked_fill", "mask", mask, x)
    if m.dtype != bool:
        raise TypeError(f"masked_fill: mask must be bool, got {m.dtype} of shape "
                        f"{tuple(m.shape)}")
    try:
        fits = np.broadcast_shapes(m.shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"masked_fill: mask of shape {tuple(m.shape)} does not broadcast "
                         f"to the input's shape {x.shape}")
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got "
                             f"shape {value.shape}")
        if value.dtype != x.dtype:
            value = astype(value, x.dtype)
    elif x.dtype.kind in "iub":
        value = x.dtype.type(value).item()      # truncated to the input's kind, as PyTorch
    return Where.apply(Tensor._make(m, None, 0), value, x)


def _stable_argsort(a, dim: int, descending: bool):
    """Indices that sort ``a`` along ``dim``, ties in their original order; NaN counts as
    the largest value (last ascending, first descending), as in PyTorch."""
    xp = backend.array_module(a)
    if not descending:
        return xp.argsort(a, axis=dim, kind="stable")
    rev = (slice(None),) * dim + (slice(None, None, -1),)
    # sorting the reversed array ascending and reading the result backwards keeps ties
    # in their original order
    return (a.shape[dim] - 1) - xp.argsort(a[rev], axis=dim, kind="stable")[rev]


def _prepared(op: str, input, dim: int):
    x = checks.tensor(op, "input", input)
    if x.ndim == 0:
        normalize_axis(dim, 1, op)
        return x.reshape((1,)), 0, True
    return x, normalize_axis(dim, x.ndim, op), False


def _take(x: Tensor, indices, dim: int, scalar: bool):
    """``(values, indices)``: the values gathered at ``indices`` along ``dim``."""
    idx = Tensor._make(indices, None, 0)
    values = gather(x, dim, idx)
    if scalar:
        return values.reshape(()), idx.reshape(())
    return values, idx


@numpy_names
def sort(input, dim: int = -1, descending: bool = False, stable: bool = False):
    """``(values, indices)`` sorted along ``dim`` (always stable: equal values keep their
    order); the values' gradient goes back to where each came from."""
    x, d, scalar = _prepared("sort", input, dim)
    order = _stable_argsort(x.data, d, descending)
    return return_types.sort(*_take(x, order, d, scalar))


@numpy_names
def argsort(input, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The indices :func:`sort` returns (int64, no gradient)."""
    x, d, scalar = _prepared("argsort", input, dim)
    order = _stable_argsort(x.data, d, descending)
    return Tensor._make(order.reshape(()) if scalar else order, None, 0)


@numpy_names
def topk(input, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """``(values, indices)`` of the ``k`` largest (``largest=False``: smallest) elements
    along ``dim``, in sorted order."""
    x, d, scalar = _prepared("topk", input, dim)
    n = x.shape[d]
    if not 0 <= k <= n:
        raise ValueError(f"topk: k = {k} is out of range for dim {dim} of length {n}")
    order = _stable_argsort(x.data, d, largest)
    order = order[(slice(None),) * d + (slice(0, k),)]
    return return_types.topk(*_take(x, order, d, scalar))


@numpy_names
def median(input, dim: int | None = None, keepdim: bool = False):
    """PyTorch's median: the lower of the two middle values for an even count (no
    averaging), NaN if any value is NaN. ``median(x)`` is a 0-d tensor; ``median(x, dim)``
    the named tuple ``(values, indices)``. The gradient goes to the one element picked."""
    x = checks.tensor("median", "input", input)
    if dim is None:
        flat = x.reshape((-1,))
        if flat.shape[0] == 0:
            raise ValueError("median: the input is empty")
        return median(flat, 0).values
    x, d, scalar = _prepared("median", x, dim)
    n = x.shape[d]
    if n == 0:
        raise IndexError(f"median: dim {dim} of shape {x.shape} is empty")
    xp = backend.array_module(x.data)
    middle = (slice(None),) * d + (slice((n - 1) // 2, (n - 1) // 2 + 1),)
    picked = _stable_argsort(x.data, d, False)[middle]                 # (..., 1, ...)
    if x.dtype.kind == "f":
        nan = xp.isnan(x.data)
        first_nan = xp.expand_dims(nan.argmax(axis=d), d)
        picked = xp.where(nan.any(axis=d, keepdims=True), first_nan, picked)
    values, indices = _take(x, picked, d, False)
    if not keepdim or scalar:
        shape = () if scalar else x.shape[:d] + x.shape[d + 1:]
        values, indices = values.reshape(shape), indices.reshape(shape)
    return return_types.median(values, indices)
