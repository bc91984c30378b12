"""Version counters: how many times the memory of a tensor was written in place.

PyTorch gives every tensor a version counter, shared with its views and with ``detach()``,
that each in-place operation bumps. Autograd records the version of every tensor it saves
for backward, and backward raises when the version has changed since: the saved values are
no longer the ones the gradient formula needs, and the gradient would be silently wrong.

xpgrad keeps one counter per *memory*: the array that owns it, at the end of the ``.base``
chain. Every tensor whose array is that array or a view of it reads and bumps the same
counter: ``x`` and ``x[1:]``, ``x.reshape(...)``, ``x.T``, ``x.detach()``, a Parameter and a
Tensor made from its ``.data``. So ``x._version`` counts the in-place writes made through
the engine (``x.add_(y)``, ``x[i] = v``, an optimizer's step, ...) to the memory ``x``
lives in. Writes on the raw arrays (``x.data[...] = v``) bypass the engine and are not
counted, as writes through ``.data`` are not counted in PyTorch.

The table maps ``id(owner)`` to ``[version, weak reference to the owner]``. Only memory
written at least once has an entry; it goes when the owner is freed, so an id reused by a
later array starts again at version 0. While the table is empty (no live memory was ever
written in place) recording and checking versions costs nothing.
"""

from __future__ import annotations

import functools
import weakref

import numpy as np

from engine import backend

# id(owner) -> [version, weak reference to the owner]; read directly by the hot paths
# of engine.function and engine.autograd, which only test whether it is empty.
table: dict = {}


def owner(array):
    """The array that owns the memory ``array`` lives in (``array`` itself if no view)."""
    base = array.base
    while base is not None and hasattr(base, "base"):   # stop at bytes, mmap, ...
        array, base = base, base.base
    return array


def version(array) -> int:
    """How many in-place writes the memory of ``array`` has had."""
    entry = table.get(id(owner(array)))
    return 0 if entry is None else entry[0]


def bump(array) -> None:
    """Count one in-place write to the memory of ``array``."""
    own = owner(array)
    key = id(own)
    entry = table.get(key)
    if entry is None:
        table[key] = [1, weakref.ref(own, functools.partial(_forget, key))]
    else:
        entry[0] += 1


def _forget(key: int, ref) -> None:
    """The owner behind ``ref`` was freed: drop its entry (unless the id was reused)."""
    entry = table.get(key)
    if entry is not None and entry[1] is ref:
        del table[key]


def is_array(value) -> bool:
    """A NumPy or CuPy array (saved values may also be Python scalars, None, tuples)."""
    return type(value) is np.ndarray or isinstance(value, np.ndarray) or \
        backend.is_cuda_array(value)


def record(values) -> tuple:
    """The version of each array in ``values`` (0 for anything else), as backward will
    compare them."""
    return tuple([version(v) if is_array(v) else 0 for v in values])
