"""Joining, splitting and tiling, with PyTorch's meanings: ``split(x, 2)`` cuts pieces of
length 2 (NumPy's ``split(x, 2)`` cuts 2 pieces: that is ``chunk`` or ``tensor_split``
here), ``repeat`` tiles the whole tensor (NumPy's ``repeat`` is ``repeat_interleave``).

Each backward undoes the move: slice a concatenation apart, concatenate the pieces'
gradients, sum the copies of a tile.
"""

from __future__ import annotations

import math

import numpy as np

from engine import backend, checks, dtypes
from engine.function import Function
from engine.ops.elementwise import astype
from engine.ops.indexing import getitem
from engine.ops.shape import broadcast_to, reshape
from engine.ops.utils import normalize_axis, numpy_names
from engine.tensor import Tensor


class Concatenate(Function):
    """y = [x₀, x₁, ...] joined along dim;  gxᵢ = the slice of gy where xᵢ landed"""

    @staticmethod
    def forward(ctx, *xs, axis=0):
        if not xs:
            raise ValueError("cat: expected a non-empty sequence of tensors")
        ctx.axis = normalize_axis(axis, xs[0].ndim, "cat")
        ctx.sizes = [x.shape[ctx.axis] for x in xs]
        try:
            return ctx.xp.concatenate(xs, axis=ctx.axis)
        except ValueError:
            shapes = ", ".join(str(x.shape) for x in xs)
            raise ValueError(f"cat: shapes {shapes} do not match off dim {axis}") from None

    @staticmethod
    def backward(ctx, gy):
        grads, start = [], 0
        lead = (slice(None),) * ctx.axis
        for size in ctx.sizes:
            grads.append(gy[lead + (slice(start, start + size),)])
            start += size
        return tuple(grads)


class Stack(Function):
    """y = [x₀, x₁, ...] stacked on a new dim;  gxᵢ = gy[..., i, ...]"""

    @staticmethod
    def forward(ctx, *xs, axis=0):
        if not xs:
            raise ValueError("stack: expected a non-empty sequence of tensors")
        ctx.axis = normalize_axis(axis, xs[0].ndim + 1, "stack")
        ctx.n = len(xs)
        try:
            return ctx.xp.stack(xs, axis=ctx.axis)
        except ValueError:
            shapes = ", ".join(str(x.shape) for x in xs)
            raise ValueError(f"stack: all shapes must be equal, got {shapes}") from None

    @staticmethod
    def backward(ctx, gy):
        lead = (slice(None),) * ctx.axis
        return tuple(gy[lead + (i,)] for i in range(ctx.n))


class Split(Function):
    """(y₀, y₁, ...) = pieces of x along dim, cut at the given indices (or into n nearly
    equal sections);  gx = the pieces' gradients concatenated"""

    @staticmethod
    def forward(ctx, x, indices_or_sections=2, axis=0):
        ctx.axis = normalize_axis(axis, x.ndim, "split")
        return tuple(ctx.xp.array_split(x, indices_or_sections, axis=ctx.axis))

    @staticmethod
    def backward(ctx, *gys):
        return ctx.xp.concatenate(gys, axis=ctx.axis)


class Pad(Function):
    """y = x surrounded by a constant;  gx = the interior of gy"""

    @staticmethod
    def forward(ctx, x, pad_width=None, value=0.0):
        ctx.interior = tuple(slice(before, before + n) for (before, _), n in
                             zip(pad_width, x.shape))
        return ctx.xp.pad(x, pad_width, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, gy):
        return gy[ctx.interior]


def _promoted(op: str, tensors) -> list:
    """The tensors cast to their common dtype (PyTorch's promotion), as cat and stack do."""
    tensors = [checks.tensor(op, f"tensors[{i}]", t) for i, t in enumerate(tensors)]
    dtype = dtypes.result_type(*tensors) if tensors else None
    return [t if t.dtype == dtype else astype(t, dtype) for t in tensors]


@numpy_names
def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing axis ``dim`` (dtypes promoted as in PyTorch)."""
    return Concatenate.apply(*_promoted("cat", tensors), axis=dim)


concat = concatenate = cat


@numpy_names
def stack(tensors, dim: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis ``dim``."""
    return Stack.apply(*_promoted("stack", tensors), axis=dim)


def _pieces(x, cuts, dim: int) -> tuple:
    """``x`` cut at the indices ``cuts`` along ``dim``: one Split node, a tuple."""
    out = Split.apply(x, indices_or_sections=list(cuts), axis=dim)
    return out if isinstance(out, tuple) else (out,)


def _cuts(sizes) -> list:
    cuts, at = [], 0
    for s in sizes[:-1]:
        at += s
        cuts.append(at)
    return cuts


@numpy_names
def tensor_split(input, indices_or_sections, dim: int = 0) -> tuple:
    """NumPy's ``array_split``: ``n`` sections of nearly equal length (the first ones one
    longer), or the pieces between the given cut indices."""
    x = checks.tensor("tensor_split", "input", input)
    normalize_axis(dim, x.ndim, "tensor_split")
    if isinstance(indices_or_sections, int):
        if indices_or_sections <= 0:
            raise ValueError(f"tensor_split: the number of sections must be positive, got "
                             f"{indices_or_sections}")
        out = Split.apply(x, indices_or_sections=indices_or_sections, axis=dim)
        return out if isinstance(out, tuple) else (out,)
    return _pieces(x, [int(i) for i in indices_or_sections], dim)


@numpy_names
def split(tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """PyTorch's split: pieces of length ``split_size`` (the last one shorter if need be),
    or of the listed lengths, which must add up to the length of ``dim``."""
    x = checks.tensor("split", "tensor", tensor)
    d = normalize_axis(dim, x.ndim, "split")
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size < 0 or (size == 0 and n > 0):
            raise ValueError(f"split: split_size must be positive, got {size} for dim {dim} "
                             f"of length {n}")
        sizes = [size] * (n // size) + ([n % size] if n % size else []) if n else [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} must be non-negative and add up to "
                             f"{n}, the length of dim {dim} of shape {x.shape}")
    return _pieces(x, _cuts(sizes), d)


@numpy_names
def chunk(input, chunks: int, dim: int = 0) -> tuple:
    """``chunks`` pieces of length ⌈n / chunks⌉ along ``dim`` (fewer when n runs out
    first, as in PyTorch: ``chunk`` of 5 into 4 gives lengths 2, 2, 1)."""
    x = checks.tensor("chunk", "input", input)
    if not isinstance(chunks, int) or chunks <= 0:
        raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
    d = normalize_axis(dim, x.ndim, "chunk")
    n = x.shape[d]
    if n == 0:
        return _pieces(x, [0] * (chunks - 1), d)
    return split(x, math.ceil(n / chunks), d)


@numpy_names
def narrow(input, dim: int, start: int, length: int) -> Tensor:
    """``length`` elements of ``dim`` from ``start`` (negative: from the end); a view."""
    x = checks.tensor("narrow", "input", input)
    d = normalize_axis(dim, x.ndim, "narrow")
    n = x.shape[d]
    if start < 0:
        start += n
    if not (0 <= start <= n and 0 <= length <= n - start):
        raise IndexError(f"narrow: start {start} and length {length} do not fit dim {dim} "
                         f"of length {n} (shape {x.shape})")
    return getitem(x, (slice(None),) * d + (slice(start, start + length),))


def pad(x, pad_width, value: float = 0.0) -> Tensor:
    """Pad with a constant; ``pad_width`` as NumPy's: ``((before, after), ...)`` per axis,
    or one ``(before, after)`` pair for every axis (``nn.functional.pad`` takes
    PyTorch's last-axis-first form)."""
    ndim = len(x.shape)
    if isinstance(pad_width, int):
        pad_width = ((pad_width, pad_width),) * ndim
    pad_width = tuple(tuple(int(v) for v in p) for p in pad_width)
    if len(pad_width) == 1 and ndim != 1:
        pad_width = pad_width * ndim
    if len(pad_width) != ndim or any(len(p) != 2 or min(p) < 0 for p in pad_width):
        raise ValueError(f"pad: pad_width {pad_width} does not fit shape {tuple(x.shape)}")
    return Pad.apply(x, pad_width=pad_width, value=value)


def tile(input, dims) -> Tensor:
    """The whole tensor repeated ``dims[i]`` times along axis i (missing leading repeats
    count as 1): y viewed as (r₀, n₀, r₁, n₁, ...) is x broadcast, so the gradient sums
    the copies."""
    x = checks.tensor("tile", "input", input)
    dims = tuple(int(r) for r in dims)
    if any(r < 0 for r in dims):
        raise ValueError(f"tile: repeats must be non-negative, got {dims}")
    dims = (1,) * (x.ndim - len(dims)) + dims
    shape = (1,) * (len(dims) - x.ndim) + x.shape
    paired = tuple(v for n in shape for v in (1, n))               # (1, n₀, 1, n₁, ...)
    copies = tuple(v for r, n in zip(dims, shape) for v in (r, n))  # (r₀, n₀, r₁, n₁, ...)
    tiled = broadcast_to(reshape(x, paired), copies)
    return reshape(tiled, tuple(r * n for r, n in zip(dims, shape)))


def repeat(input, *sizes) -> Tensor:
    """PyTorch's ``x.repeat(2, 3)``: tile the tensor (see :func:`tile`); at least one
    repeat per axis."""
    x = checks.tensor("repeat", "input", input)
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    if len(sizes) < x.ndim:
        raise ValueError(f"repeat: {len(sizes)} repeats {tuple(sizes)} for a {x.ndim}-d "
                         f"tensor of shape {x.shape}: give at least one per axis")
    return tile(x, sizes)


@numpy_names
def repeat_interleave(input, repeats, dim: int | None = None) -> Tensor:
    """Each element repeated ``repeats`` times in place (NumPy's ``repeat``): along
    ``dim``, or over the flattened tensor when None. ``repeats`` is an int or one count
    per element of ``dim``."""
    x = checks.tensor("repeat_interleave", "input", input)
    if dim is None:
        x, dim = reshape(x, (-1,)), 0
    d = normalize_axis(dim, x.ndim, "repeat_interleave")
    xp = backend.array_module(x.data)
    counts = repeats.data if isinstance(repeats, Tensor) else repeats
    if not isinstance(counts, int) and getattr(counts, "ndim", 1) == 0:
        counts = int(counts)
    if isinstance(counts, int):
        if counts < 0:
            raise ValueError(f"repeat_interleave: repeats must be non-negative, got {counts}")
        picks = xp.repeat(xp.arange(x.shape[d]), counts)
    else:
        counts = backend.to_numpy(counts) if backend.is_cuda_array(counts) else \
            np.asarray(counts)
        if counts.shape != (x.shape[d],) or (counts.size and int(counts.min()) < 0):
            raise ValueError(f"repeat_interleave: repeats of shape {tuple(counts.shape)} "
                             f"must hold one non-negative count per element of dim {dim} "
                             f"(length {x.shape[d]})")
        # the index list is made on the host: CuPy's repeat takes no array of counts
        picks = xp.asarray(np.repeat(np.arange(x.shape[d]), counts))
    return getitem(x, (slice(None),) * d + (picks,))


def flip(input, dims) -> Tensor:
    """The order of the elements reversed along each axis in ``dims``."""
    x = checks.tensor("flip", "input", input)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    axes = {normalize_axis(d, x.ndim, "flip") for d in dims}
    return getitem(x, tuple(slice(None, None, -1) if a in axes else slice(None)
                            for a in range(x.ndim)))
