"""Helpers shared by the ops: undoing broadcasting, normalizing axes, NumPy's argument
names."""

from __future__ import annotations

import functools
import inspect


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
    """``axis`` (None, int or sequence, negatives allowed) as a sorted tuple of axes.

    A 0-d tensor takes dim 0 or -1 as its one (virtual) axis, as in PyTorch."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise IndexError(f"{op}: dim {a} is out of range for a {ndim}-d tensor "
                             f"(expected in [{-max(ndim, 1)}, {max(ndim, 1) - 1}])")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {axis} names an axis more than once")
    return tuple(sorted(out))


def normalize_axis(axis: int, ndim: int, op: str) -> int:
    """One axis, negatives allowed, checked against ``ndim``."""
    if not -ndim <= axis < ndim:
        raise IndexError(f"{op}: dim {axis} is out of range for a {ndim}-d tensor "
                         f"(expected in [{-ndim}, {ndim - 1}])")
    return axis % ndim


def kept_shape(shape: tuple, axes: tuple) -> tuple:
    """``shape`` with the reduced ``axes`` set to 1 (the keepdims shape)."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


_NUMPY_NAMES = {"axis": "dim", "keepdims": "keepdim", "ddof": "correction"}


def numpy_names(fn):
    """Let ``fn`` (written with PyTorch's ``dim``, ``keepdim``, ``correction``) also take
    NumPy's ``axis``, ``keepdims``, ``ddof``; naming one argument both ways is an error."""
    params = list(inspect.signature(fn).parameters)
    aliases = {alias: (name, params.index(name)) for alias, name in _NUMPY_NAMES.items()
               if name in params}
    op = fn.__name__

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if kwargs:
            for alias, (name, position) in aliases.items():
                if alias in kwargs:
                    value = kwargs.pop(alias)
                    if name in kwargs or len(args) > position:
                        raise TypeError(f"{op}: got both {name}= and {alias}= ({alias} is "
                                        f"NumPy's name for {name}); pass only one")
                    kwargs[name] = value
        return fn(*args, **kwargs)

    return call
