"""Shape ops: they move or copy elements without arithmetic, so each backward undoes the
move (reshape back, transpose by the inverse permutation, sum a broadcast away, slice a
concatenation apart)."""

from __future__ import annotations

from engine import backend
from engine.function import Function
from engine.ops.utils import normalize_axes, normalize_axis, sum_to
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
        axes = tuple(a % x.ndim if x.ndim else a for a in axes)
        if sorted(axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation for shape {x.shape}")
        ctx.inverse = tuple(sorted(range(x.ndim), key=axes.__getitem__))
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, gy):
        return gy.transpose(ctx.inverse)


class SwapAxes(Function):
    """y = x with two axes exchanged;  gx = gy with them exchanged back"""

    @staticmethod
    def forward(ctx, x, axis1=0, axis2=1):
        ctx.axes = (normalize_axis(axis1, x.ndim, "swapaxes"),
                    normalize_axis(axis2, x.ndim, "swapaxes"))
        return x.swapaxes(*ctx.axes)

    @staticmethod
    def backward(ctx, gy):
        return gy.swapaxes(*ctx.axes)


class BroadcastTo(Function):
    """y = x repeated along broadcast axes;  gx = gy summed over them"""

    @staticmethod
    def forward(ctx, x, shape=None):
        ctx.x_shape = x.shape
        try:
            return ctx.xp.broadcast_to(x, shape)
        except ValueError:
            raise ValueError(
                f"broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None

    @staticmethod
    def backward(ctx, gy):
        return sum_to(gy, ctx.x_shape)


class Concatenate(Function):
    """y = [x₀, x₁, ...] joined along axis;  gxᵢ = the slice of gy where xᵢ landed"""

    @staticmethod
    def forward(ctx, *xs, axis=0):
        if not xs:
            raise ValueError("concatenate: need at least one tensor")
        ctx.axis = normalize_axis(axis, xs[0].ndim, "concatenate")
        ctx.sizes = [x.shape[ctx.axis] for x in xs]
        try:
            return ctx.xp.concatenate(xs, axis=ctx.axis)
        except ValueError:
            shapes = ", ".join(str(x.shape) for x in xs)
            raise ValueError(
                f"concatenate: shapes {shapes} do not match off axis {axis}") from None

    @staticmethod
    def backward(ctx, gy):
        grads, start = [], 0
        lead = (slice(None),) * ctx.axis
        for size in ctx.sizes:
            grads.append(gy[lead + (slice(start, start + size),)])
            start += size
        return tuple(grads)


class Stack(Function):
    """y = [x₀, x₁, ...] stacked on a new axis;  gxᵢ = gy[..., i, ...]"""

    @staticmethod
    def forward(ctx, *xs, axis=0):
        if not xs:
            raise ValueError("stack: need at least one tensor")
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
    """(y₀, y₁, ...) = pieces of x along axis;  gx = the pieces' gradients concatenated"""

    @staticmethod
    def forward(ctx, x, indices_or_sections=2, axis=0):
        ctx.axis = normalize_axis(axis, x.ndim, "split")
        try:
            return tuple(ctx.xp.split(x, indices_or_sections, axis=ctx.axis))
        except ValueError:
            raise ValueError(
                f"split: cannot split axis {axis} of shape {x.shape} into "
                f"{indices_or_sections} equal parts"
            ) from None

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


def reshape(x, shape):
    """The same elements in a new shape (one entry may be -1)."""
    if isinstance(shape, int):
        shape = (shape,)
    return Reshape.apply(x, shape=tuple(shape))


def transpose(x, axes=None):
    """Permute axes (reverse them when ``axes`` is None)."""
    return Transpose.apply(x, axes=None if axes is None else tuple(axes))


def permute(x, axes):
    """Permute axes (PyTorch's name for ``transpose`` with explicit axes)."""
    return Transpose.apply(x, axes=tuple(axes))


def swapaxes(x, axis1: int, axis2: int):
    """Exchange two axes."""
    return SwapAxes.apply(x, axis1=axis1, axis2=axis2)


def broadcast_to(x, shape):
    """Repeat along broadcast axes to ``shape`` (a view; backward sums)."""
    return BroadcastTo.apply(x, shape=tuple(shape))


def squeeze(x, axis=None):
    """Drop size-1 axes (all of them, or those named by ``axis``)."""
    shape = x.shape
    if axis is None:
        new = tuple(n for n in shape if n != 1)
    else:
        axes = normalize_axes(axis, len(shape), "squeeze")
        for a in axes:
            if shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} of shape {shape} has size {shape[a]}, not 1")
        new = tuple(n for i, n in enumerate(shape) if i not in axes)
    return Reshape.apply(x, shape=new)


def unsqueeze(x, axis: int):
    """Insert a size-1 axis at ``axis``."""
    shape = x.shape
    axis = normalize_axis(axis, len(shape) + 1, "unsqueeze")
    return Reshape.apply(x, shape=shape[:axis] + (1,) + shape[axis:])


expand_dims = unsqueeze


def flatten(x, start_axis: int = 0, end_axis: int = -1):
    """Merge axes ``start_axis..end_axis`` into one (PyTorch's ``flatten``)."""
    shape = x.shape
    if len(shape) == 0:
        return Reshape.apply(x, shape=(1,))
    s = normalize_axis(start_axis, len(shape), "flatten")
    e = normalize_axis(end_axis, len(shape), "flatten")
    n = 1
    for d in shape[s:e + 1]:
        n *= d
    return Reshape.apply(x, shape=shape[:s] + (n,) + shape[e + 1:])


def concatenate(tensors, axis: int = 0):
    """Join tensors along an existing axis."""
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors, axis: int = 0):
    """Join tensors along a new axis."""
    return Stack.apply(*tensors, axis=axis)


def split(x, indices_or_sections, axis: int = 0):
    """NumPy's split: ``n`` equal sections, or the indices where to cut; a tuple."""
    if not isinstance(indices_or_sections, int):
        indices_or_sections = list(indices_or_sections)
    out = Split.apply(x, indices_or_sections=indices_or_sections, axis=axis)
    return out if isinstance(out, tuple) else (out,)


def pad(x, pad_width, value: float = 0.0):
    """Pad with a constant; ``pad_width`` as NumPy's: ``((before, after), ...)`` per axis,
    or one ``(before, after)`` pair for every axis."""
    ndim = len(x.shape)
    if isinstance(pad_width, int):
        pad_width = ((pad_width, pad_width),) * ndim
    pad_width = tuple(tuple(int(v) for v in p) for p in pad_width)
    if len(pad_width) == 1 and ndim != 1:
        pad_width = pad_width * ndim
    if len(pad_width) != ndim or any(len(p) != 2 or min(p) < 0 for p in pad_width):
        raise ValueError(f"pad: pad_width {pad_width} does not fit shape {tuple(x.shape)}")
    return Pad.apply(x, pad_width=pad_width, value=value)


def to_device(x, device: str):
    """Copy to a device (differentiable: the gradient comes back to the source device)."""
    return ToDevice.apply(x, device=device)
