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

Saving costs one integer per node, not a look-up per array: all writes are numbered by one
clock (``writes``), a node records the clock when it saves (``saved_at``), and every memory
keeps the clock of its latest writes. Backward has nothing to check if the clock has not
moved since the node saved; otherwise a saved array was modified if its memory was written
after that time, and its version then was its version now less those later writes.

The table maps ``id(owner)`` to ``[version, weak reference to the owner, clocks of the
latest writes]``. Only memory written at least once has an entry; it goes when the owner is
freed, so an id reused by a later array starts again at version 0. While the table is
empty (no live memory was ever written in place) nodes record nothing at all.
"""

from __future__ import annotations

import bisect
import functools
import weakref

import numpy as np

from engine import backend

HISTORY = 32   # write clocks kept per memory: enough to name the exact version at saving

# id(owner) -> [version, weak reference to the owner, clocks of its latest writes]; the
# hot paths of engine.function and engine.autograd read it directly, testing if it is empty.
table: dict = {}
# [the clock: how many in-place writes there have been in all]
writes = [0]


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
    writes[0] += 1
    entry = table.get(key)
    if entry is None:
        table[key] = [1, weakref.ref(own, functools.partial(_forget, key)), [writes[0]]]
        return
    entry[0] += 1
    clocks = entry[2]
    clocks.append(writes[0])
    if len(clocks) > HISTORY:
        del clocks[0]


def _forget(key: int, ref) -> None:
    """The owner behind ``ref`` was freed: drop its entry (unless the id was reused)."""
    entry = table.get(key)
    if entry is not None and entry[1] is ref:
        del table[key]


def written_since(array, clock) -> tuple:
    """``(version now, writes after clock, exact)`` for the memory of ``array``.

    ``clock`` None stands for a time when no live memory had been written (every write
    came later). ``exact`` is False when more writes than :data:`HISTORY` came after the
    clock: then there were at least that many.
    """
    entry = table.get(id(owner(array)))
    if entry is None:
        return 0, 0, True
    now, _, clocks = entry
    if clock is None:
        return now, now, True
    later = len(clocks) - bisect.bisect_right(clocks, clock)
    return now, later, later < len(clocks) or len(clocks) == now


def is_array(value) -> bool:
    """A NumPy or CuPy array (saved values may also be Python scalars, None, tuples)."""
    return isinstance(value, np.ndarray) or backend.is_cuda_array(value)
