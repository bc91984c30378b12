"""Shape ops: they move or copy elements without arithmetic, so each backward undoes the
move (reshape back, permute by the inverse permutation, sum a broadcast away).

The names and meanings are PyTorch's: ``transpose(x, dim0, dim1)`` swaps two axes and
``permute(x, dims)`` reorders all of them (NumPy's ``transpose(axes)``);
``expand``/``broadcast_to`` take -1 for "keep this size"; ``squeeze(dim)`` on an axis
that is not 1 leaves it. Joining and splitting live in :mod:`engine.ops.join`.
"""

from __future__ import annotations

from engine import backend, checks
from engine.function import Function
from engine.ops.utils import normalize_axes, normalize_axis, numpy_names, sum_to
from engine.tensor import Tensor


class Reshape(Function):
    """y = x viewed with a new shape;  gx = gy reshaped back"""

    @staticmethod
    def forward(ctx, x, shape=None):
        ctx.x_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot reshape shape {x.shape} ({x.size} elements) into {shape}"
            ) from None

    @staticmethod
    def backward(ctx, gy):
        return gy.reshape(ctx.x_shape)


class Transpose(Function):
    """y = x with axes permuted by p;  gx = gy permuted by p⁻¹"""

    @staticmethod
    def forward(ctx, x, axes=None):
        if axes is None:
            axes = tuple(range(x.ndim))[::-1]
        in_range = all(-x.ndim <= a < x.ndim for a in axes)
        if not in_range or sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
            raise ValueError(f"permute: dims {axes} are not a permutation of the "
                             f"{x.ndim} axes of shape {x.shape}")
        axes = tuple(a % x.ndim for a in axes)
        ctx.inverse = tuple(sorted(range(x.ndim), key=axes.__getitem__))
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, gy):
        return ctx.xp.transpose(gy, ctx.inverse)


class SwapAxes(Function):
    """y = x with two axes exchanged;  gx = gy with them exchanged back"""

    @staticmethod
    def forward(ctx, x, axis1=0, axis2=1):
        ndim = max(x.ndim, 1)              # a 0-d tensor has the one virtual axis 0
        ctx.axes = (normalize_axis(axis1, ndim, "transpose"),
                    normalize_axis(axis2, ndim, "transpose"))
        return x.swapaxes(*ctx.axes) if x.ndim else x

    @staticmethod
    def backward(ctx, gy):
        return gy.swapaxes(*ctx.axes) if gy.ndim else gy


class BroadcastTo(Function):
    """y = x repeated along broadcast axes;  gx = gy summed over them"""

    @staticmethod
    def forward(ctx, x, shape=None):
        ctx.x_shape = x.shape
        try:
            return ctx.xp.broadcast_to(x, shape)
        except ValueError:
            raise ValueError(
                f"expand: cannot broadcast shape {x.shape} to {shape}") from None

    @staticmethod
    def backward(ctx, gy):
        return sum_to(gy, ctx.x_shape)


class Clone(Function):
    """y = a copy of x (its own memory, C order);  gx = gy"""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, gy):
        return gy


class ToDevice(Function):
    """y = x copied to another device;  gx = gy copied back"""

    @staticmethod
    def forward(ctx, x, device="cpu"):
        ctx.source = backend.device_of(x)
        return backend.to_device(x, device)

    @staticmethod
    def backward(ctx, gy):
        if isinstance(gy, Tensor):
            return gy.to(ctx.source)
        return backend.to_device(gy, ctx.source)


def size_args(sizes) -> tuple:
    """``f(2, 3)`` and ``f((2, 3))`` alike: the varargs of view, reshape, expand, ..."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = sizes[0]
    return tuple(int(s) for s in sizes)


def reshape(input, shape) -> Tensor:
    """The same elements in a new shape (one entry may be -1)."""
    if isinstance(shape, int):
        shape = (shape,)
    return Reshape.apply(input, shape=tuple(shape))


def permute(input, dims) -> Tensor:
    """Reorder all axes: axis i of the result is axis ``dims[i]`` of the input (NumPy's
    ``transpose(axes)``)."""
    return Transpose.apply(input, axes=tuple(dims))


def transpose(input, dim0: int, dim1: int) -> Tensor:
    """Swap axes ``dim0`` and ``dim1`` (PyTorch's meaning; on a matrix,
    ``transpose(x, 0, 1)`` is its transpose). For NumPy's full permutation use
    :func:`permute`."""
    return SwapAxes.apply(input, axis1=dim0, axis2=dim1)


swapaxes = swapdims = transpose


def t(input) -> Tensor:
    """The transpose of a matrix; 0-d and 1-d tensors come back as they are."""
    if input.ndim > 2:
        raise ValueError(f"t: expects a tensor with at most 2 axes, got shape {input.shape}; "
                         "use transpose(dim0, dim1) or permute(dims)")
    return SwapAxes.apply(input, axis1=0, axis2=-1) if input.ndim == 2 else input


def reverse_dims(input) -> Tensor:
    """All axes in reverse order (``.T``; a matrix's transpose)."""
    return Transpose.apply(input, axes=None)


def broadcast_to(input, size) -> Tensor:
    """Repeat along broadcast axes to ``size`` (a view; backward sums); -1 keeps a size."""
    size = size_args((size,))
    lead = len(size) - input.ndim
    if lead < 0:
        raise ValueError(f"expand: the {len(size)} sizes {size} are fewer than the "
                         f"{input.ndim} axes of shape {input.shape}")
    if any(s == -1 for s in size[:lead]):
        raise ValueError(f"expand: -1 is not allowed for the new leading axes of {size}")
    size = size[:lead] + tuple(n if s == -1 else s for s, n in zip(size[lead:], input.shape))
    return BroadcastTo.apply(input, shape=size)


def expand(input, *sizes) -> Tensor:
    """``x.expand(4, -1, 3)``: broadcast to the given sizes, -1 keeping an axis as it is
    (a view: no copy; the gradient is summed back)."""
    return broadcast_to(input, size_args(sizes))


@numpy_names
def squeeze(input, dim=None) -> Tensor:
    """Drop size-1 axes: all of them, or those among ``dim`` (an int or a tuple); an axis
    named in ``dim`` whose size is not 1 stays, as in PyTorch."""
    shape = input.shape
    axes = range(len(shape)) if dim is None else normalize_axes(dim, len(shape), "squeeze")
    new = tuple(n for i, n in enumerate(shape) if not (i in axes and n == 1))
    return Reshape.apply(input, shape=new)


@numpy_names
def unsqueeze(input, dim: int) -> Tensor:
    """Insert a size-1 axis at ``dim``."""
    shape = input.shape
    dim = normalize_axis(dim, len(shape) + 1, "unsqueeze")
    return Reshape.apply(input, shape=shape[:dim] + (1,) + shape[dim:])


expand_dims = unsqueeze


def flatten(input, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes ``start_dim..end_dim`` into one (a 0-d tensor becomes (1,))."""
    shape = input.shape
    if len(shape) == 0:
        return Reshape.apply(input, shape=(1,))
    s = normalize_axis(start_dim, len(shape), "flatten")
    e = normalize_axis(end_dim, len(shape), "flatten")
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                         f"for shape {shape}")
    n = 1
    for d in shape[s:e + 1]:
        n *= d
    return Reshape.apply(input, shape=shape[:s] + (n,) + shape[e + 1:])


def clone(input) -> Tensor:
    """A copy in its own memory, part of the graph (the gradient passes through)."""
    return Clone.apply(checks.tensor("clone", "input", input))


def contiguous(input) -> Tensor:
    """``input`` itself when its memory is C-contiguous, else a contiguous copy."""
    flags = input.data.flags
    return input if flags.c_contiguous else Clone.apply(input)


def to_device(x, device: str) -> Tensor:
    """Copy to a device (differentiable: the gradient comes back to the source device)."""
    return ToDevice.apply(x, device=device)
