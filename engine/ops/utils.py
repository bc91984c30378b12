"""Helpers shared by the ops: undoing broadcasting, normalizing axes."""

from __future__ import annotations


def shape_of(x) -> tuple:
    """Shape of an array, or ``()`` for a Python scalar."""
    return getattr(x, "shape", ())


def sum_to(g, shape: tuple):
    """Sum gradient ``g`` down to ``shape``: the one place broadcasting is undone.

    Works on raw arrays and on Tensors (both have ``sum(axis, keepdims)`` and ``reshape``),
    so it serves first- and higher-order backward passes alike.
    """
    if g.shape == shape:
        return g
    lead = len(g.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def normalize_axes(axis, ndim: int, op: str) -> tuple:
    """``axis`` (None, int or sequence, negatives allowed) as a sorted tuple of axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a {ndim}-d tensor")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(out))


def normalize_axis(axis: int, ndim: int, op: str) -> int:
    """One axis, negatives allowed, checked against ``ndim``."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for a {ndim}-d tensor")
    return axis % ndim


def kept_shape(shape: tuple, axes: tuple) -> tuple:
    """``shape`` with the reduced ``axes`` set to 1 (the keepdims shape)."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))
