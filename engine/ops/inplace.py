"""In-place ops: ``x.add_(y)``, ``x += y``, ``x.mul_(2)``, ``x.clamp_(0, 1)``, ``x[idx] = v``,
... as in PyTorch, bound onto ``Tensor`` by :func:`bind` (as :mod:`engine.ops.methods` binds
the rest).

Each op writes into the memory of ``x`` and bumps its version counter
(:mod:`engine.versions`), so that a backward that saved that memory raises instead of
using the new values. Under autograd (grad mode on, and ``x`` or an operand requires grad)
PyTorch's rules apply:

- ``x`` a leaf that requires grad: error. Its ``.grad`` would be the gradient at values
  that no longer exist; change a parameter's values under ``engine.no_grad()``.
- otherwise the op is recorded and ``x`` takes the op's node as its ``grad_fn``:
  ``y = x * 2; y.add_(1)`` differentiates as ``y = x * 2 + 1``, and a tensor that did not
  require grad (``buf.add_(w)``) becomes a non-leaf that does.
- ``x`` a view of memory that another tensor also uses (``y[0].mul_(2)``): error. PyTorch
  rewrites the history of every tensor sharing the memory; xpgrad does not track views,
  and refuses rather than leave the others with a history their values no longer match.
  Item assignment on the tensor itself, ``y[0] = y[0] * 2``, records the same thing.

Recording takes one of two routes:

- arithmetic (``add_ sub_ mul_ div_ pow_ neg_ exp_ clamp_ relu_ sigmoid_ tanh_``): the
  out-of-place op computes the new values and their node, so each formula is written once
  (:mod:`engine.ops.elementwise`, :mod:`engine.ops.activation`); the values are copied into
  ``x``'s memory and ``x`` takes the node. A node that saved ``x``'s array (``Mul`` saves
  its inputs) keeps a copy of the old values instead. What the node saved is then its own,
  so later in-place writes to ``x`` never invalidate it: ``y.exp_(); y.add_(1)`` backward
  works (PyTorch refuses it, as its ``exp_`` saves ``y`` itself), and ``y.div_(b);
  y.clamp_(0, 1)`` works in both, although xpgrad's ``Div`` saves its output. The price is
  memory: a recorded in-place op holds what its out-of-place twin would.
- overwrites (``x[idx] = v``, ``copy_ fill_ zero_ masked_fill_ normal_ uniform_``):
  :class:`SetItem` writes ``v`` into ``x``'s memory, y = x with y[idx] = v.

Outside recording every op is the raw in-place array operation.
"""

from __future__ import annotations

import sys
import types

import numpy as np

from engine import backend, random, versions
from engine.function import Function, _check_devices, resave
from engine.grad_mode import is_grad_enabled
from engine.ops.activation import relu, sigmoid, stable_sigmoid, tanh
from engine.ops.elementwise import add, astype, clip, div, mul, neg, pow, sub
from engine.ops.unary import exp
from engine.ops.indexing import prepare_index
from engine.ops.shape import to_device
from engine.ops.utils import shape_of, sum_to
from engine.tensor import Tensor


class SetItem(Function):
    """y = x with y[index] = v (v broadcast as NumPy does);  gx = gy with gy[index] = 0,
    gv = gy[index] summed to v's shape

    ``copy=False`` (item assignment) writes into x's memory; backward builds a new array
    (``copy=True``), as it must never write into gy.
    """

    @staticmethod
    def forward(ctx, x, v, index=(), copy=False, op="setitem"):
        ctx.index = index
        ctx.v_shape, ctx.v_dtype = shape_of(v), getattr(v, "dtype", None)
        y = x.copy() if copy else x
        assign(op, y, index, v)
        return y

    @staticmethod
    def backward(ctx, gy):
        gx = gv = None
        if ctx.needs_input_grad[0]:
            if isinstance(gy, Tensor):
                gx = SetItem.apply(gy, 0.0, index=ctx.index, copy=True)
            else:
                gx = gy.copy()
                gx[ctx.index] = 0
        if ctx.needs_input_grad[1]:
            gv = sum_to(gy[ctx.index], ctx.v_shape)
            if gv.dtype != ctx.v_dtype:
                gv = gv.astype(ctx.v_dtype)
        return gx, gv


def assign(op: str, target, index, value) -> None:
    """``target[index] = value`` on arrays, with errors that name the op and the shapes."""
    try:
        target[index] = value
    except (IndexError, ValueError) as exc:
        raise type(exc)(f"{op}: {exc} (tensor shape {tuple(target.shape)}, value shape "
                        f"{tuple(shape_of(value))})") from None


# ----------------------------------------------------------------------------- the rules
def _unshared_refs() -> int:
    """``sys.getrefcount`` of a view's base that nothing but the view refers to."""
    view = np.zeros(1)[:]
    return sys.getrefcount(view.base)


_UNSHARED = _unshared_refs()


def _shares_memory(array) -> bool:
    """Whether ``array`` is a view of memory something else refers to as well (another
    tensor, another view). A view of an op's temporary (a reshaped matmul result) is not."""
    return array.base is not None and sys.getrefcount(array.base) > _UNSHARED


def _records(op: str, x: Tensor, operands) -> bool:
    """Whether the in-place op on ``x`` is recorded in the graph; raises where it may not be
    (see the module docstring)."""
    if not is_grad_enabled():
        return False
    if not (x.requires_grad or any(isinstance(o, Tensor) and o.requires_grad
                                   for o in operands)):
        return False
    if x.requires_grad and x._node is None:
        raise RuntimeError(
            f"{op}: a leaf Variable that requires grad is being used in an in-place "
            f"operation (shape {x.shape}); change its values under engine.no_grad(), or "
            "use the out-of-place op")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: the tensor is {x.dtype}; only a floating-point tensor can "
                        "take values that require grad")
    if _shares_memory(x.data):
        raise RuntimeError(
            f"{op}: in-place operation, while recording a graph, on a view (shape {x.shape}) "
            "of memory that another tensor uses too; assign through the tensor it views "
            "(base[index] = ...), or clone() the view first")
    return True


def _check_target(op: str, x: Tensor) -> None:
    if not getattr(x.data.flags, "writeable", True):    # CuPy arrays have no such flag
        raise ValueError(f"{op}: the tensor's memory is read-only (shape {x.shape}, e.g. a "
                         "broadcast view); clone() it first")


def _check_broadcast(op: str, x: Tensor, other) -> None:
    shape = tuple(shape_of(other.data if isinstance(other, Tensor) else other))
    if shape == x.shape or not shape:
        return
    try:
        result = np.broadcast_shapes(x.shape, shape)
    except ValueError:
        result = None
    if result != x.shape:
        raise ValueError(f"{op}: an operand of shape {shape} can't be broadcast to the "
                         f"tensor's shape {x.shape} (an in-place result keeps its shape)")


# ----------------------------------------------------------------------------- two routes
def _arith(op: str, x: Tensor, compute, raw, *operands) -> Tensor:
    """x ← compute(x, *operands) in x's memory: ``compute`` is the out-of-place op (values
    and node, when recording), ``raw(xp, array, *arrays)`` the in-place array operation."""
    _check_target(op, x)
    for other in operands:
        _check_broadcast(op, x, other)
    if _records(op, x, operands):
        return _rebase(op, x, compute(x, *operands))
    arrays = [o.data if isinstance(o, Tensor) else o for o in operands]
    data = x.data
    xp = _check_devices(op, [data, *arrays])
    try:
        raw(xp, data, *arrays)
    except TypeError as exc:          # NumPy's casting error: a float result, an int tensor
        raise TypeError(f"{op}: {exc} (tensor dtype {x.dtype}); an in-place result keeps "
                        "the tensor's dtype") from None
    versions.bump(data)
    return x


def _rebase(op: str, x: Tensor, new: Tensor) -> Tensor:
    """Write ``new``'s values into x's memory and give x new's place in the graph."""
    if new.dtype != x.dtype:
        if not np.can_cast(new.dtype, x.dtype, "same_kind"):
            raise TypeError(f"{op}: result type {new.dtype} can't be cast to the tensor's "
                            f"dtype {x.dtype}")
        new = astype(new, x.dtype)
    node, data = new._node, x.data
    if node is not None and any(s is data for s in node.saved):
        resave(node, data, data.copy())          # the old values that backward reads
    data[...] = new.data
    versions.bump(data)
    _take_node(x, node, new._index)
    return x


def _take_node(x: Tensor, node, index: int) -> None:
    """x becomes output ``index`` of ``node`` (its grad_fn); a ``retain_grad()`` on x moves
    along, so that ``x.grad`` is the gradient of its new values, as in PyTorch."""
    old = x._node
    retained = old is not None and old.retained is not None and \
        any(ref() is x for _, ref in old.retained)
    if retained:
        old.retained = [(i, ref) for i, ref in old.retained if ref() is not x] or None
    x._node, x._index, x.requires_grad = node, index, node is not None
    if retained:
        x.retain_grad()


def _overwrite(op: str, x: Tensor, index, value) -> Tensor:
    """x[index] = value in x's memory, recorded as :class:`SetItem` when autograd needs it."""
    _check_target(op, x)
    if not isinstance(value, (Tensor, int, float, bool, np.generic)) and \
            not backend.is_cuda_array(value):
        value = backend.to_device(np.asarray(value), x.device)
    if _records(op, x, (value,)):
        out = SetItem.apply(x, value, index=index, op=op)
        versions.bump(x.data)
        _take_node(x, out._node, 0)
        return x
    data = value.data if isinstance(value, Tensor) else value
    _check_devices(op, [x.data, data])
    assign(op, x.data, index, data)
    versions.bump(x.data)
    return x


def _scalar_value(op: str, value):
    """A fill value: a number, or a 0-d Tensor (differentiable), as PyTorch requires."""
    if isinstance(value, Tensor) and value.ndim != 0:
        raise RuntimeError(f"{op}: only supports a 0-dimensional value tensor, got one of "
                           f"shape {value.shape}")
    return value


def _source(op: str, x: Tensor, generator):
    """The generator and the host dtype for draws that fill ``x`` (floating tensors only):
    ``generator``, else the engine's, drawing in float32 or float64 on the host."""
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expects a floating-point tensor, got {x.dtype}")
    gen = generator if generator is not None else random.default_generator()
    return gen, (np.float64 if x.dtype == np.float64 else np.float32)


def _like(x: Tensor, values):
    """Host draws as x's dtype, on x's device."""
    return backend.to_device(values.astype(x.dtype, copy=False), x.device)


def _ufunc(name: str):
    """The raw in-place form of ufunc ``name``: array ← name(array, *operands)."""
    def raw(xp, data, *operands):
        getattr(xp, name)(data, *operands, out=data)
    return raw


_RAW = {name: _ufunc(name) for name in ("add", "subtract", "multiply", "divide", "power",
                                        "negative", "exp", "tanh")}


def _raw_sigmoid(xp, data):
    xp.copyto(data, stable_sigmoid(xp, data), casting="same_kind")


def _raw_relu(xp, data):
    xp.maximum(data, 0, out=data)


# ----------------------------------------------------------------------------- the methods
class InplaceMethods:
    """The in-place methods ``Tensor`` gets (never instantiated). Each returns the tensor."""

    def add_(self, other, *, alpha=1) -> Tensor:
        """x ← x + α·other"""
        if alpha != 1:
            other = other * alpha
        return _arith("add_", self, add, _RAW["add"], other)

    def sub_(self, other, *, alpha=1) -> Tensor:
        """x ← x - α·other"""
        if alpha != 1:
            other = other * alpha
        return _arith("sub_", self, sub, _RAW["subtract"], other)

    def mul_(self, other) -> Tensor:
        """x ← x·other"""
        return _arith("mul_", self, mul, _RAW["multiply"], other)

    def div_(self, other) -> Tensor:
        """x ← x / other"""
        return _arith("div_", self, div, _RAW["divide"], other)

    def pow_(self, exponent) -> Tensor:
        """x ← x ** exponent"""
        return _arith("pow_", self, pow, _RAW["power"], exponent)

    def neg_(self) -> Tensor:
        """x ← -x"""
        return _arith("neg_", self, neg, _RAW["negative"])

    def exp_(self) -> Tensor:
        """x ← eˣ"""
        return _arith("exp_", self, exp, _RAW["exp"])

    def tanh_(self) -> Tensor:
        """x ← tanh(x)"""
        return _arith("tanh_", self, tanh, _RAW["tanh"])

    def sigmoid_(self) -> Tensor:
        """x ← σ(x)"""
        return _arith("sigmoid_", self, sigmoid, _raw_sigmoid)

    def relu_(self) -> Tensor:
        """x ← max(x, 0)"""
        return _arith("relu_", self, relu, _raw_relu)

    def clamp_(self, min=None, max=None) -> Tensor:
        """x ← min(max(x, min), max) (numbers; either may be None)"""
        if min is None and max is None:
            raise RuntimeError("clamp_: at least one of 'min' or 'max' must not be None")
        for bound in (min, max):
            if bound is not None and not isinstance(bound, (int, float, np.generic)):
                raise TypeError(f"clamp_: min and max must be numbers, got "
                                f"{type(bound).__name__}")

        def raw(xp, data):
            xp.clip(data, min, max, out=data)

        return _arith("clamp_", self, lambda x: clip(x, min, max), raw)

    clip_ = clamp_

    def zero_(self) -> Tensor:
        """x ← 0"""
        return _overwrite("zero_", self, (Ellipsis,), 0)

    def fill_(self, value) -> Tensor:
        """x ← value (a number or a 0-d tensor)"""
        return _overwrite("fill_", self, (Ellipsis,), _scalar_value("fill_", value))

    def copy_(self, src, non_blocking: bool = False) -> Tensor:
        """x ← src, broadcast to x's shape, cast to its dtype, copied to its device"""
        if isinstance(src, Tensor) and src.device != self.device:
            src = to_device(src, self.device)
        return _overwrite("copy_", self, (Ellipsis,), src)

    def masked_fill_(self, mask, value) -> Tensor:
        """x ← value where mask (a bool tensor broadcast to x's shape)"""
        xp = backend.array_module(self.data)
        m = mask.data if isinstance(mask, Tensor) else mask
        if not versions.is_array(m):
            m = xp.asarray(m)
        if m.dtype != bool:
            raise TypeError(f"masked_fill_: the mask must be a bool tensor, got {m.dtype}")
        _check_devices("masked_fill_", [self.data, m])
        try:
            m = xp.broadcast_to(m, self.shape)
        except ValueError:
            raise ValueError(f"masked_fill_: a mask of shape {m.shape} can't be broadcast to "
                             f"the tensor's shape {self.shape}") from None
        return _overwrite("masked_fill_", self, (m,), _scalar_value("masked_fill_", value))

    def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator=None) -> Tensor:
        """x ← draws from N(mean, std²) (the engine's generator unless ``generator``)"""
        gen, dtype = _source("normal_", self, generator)
        z = gen.standard_normal(self.shape, dtype=dtype)
        return _overwrite("normal_", self, (Ellipsis,), _like(self, z * std + mean))

    def uniform_(self, from_: float = 0.0, to: float = 1.0, *, generator=None) -> Tensor:
        """x ← draws from U[from_, to) (the engine's generator unless ``generator``)"""
        gen, dtype = _source("uniform_", self, generator)
        u = gen.random(self.shape, dtype=dtype)
        return _overwrite("uniform_", self, (Ellipsis,), _like(self, from_ + (to - from_) * u))

    def detach_(self) -> Tensor:
        """Cut this tensor from its graph, in place: a leaf that does not require grad."""
        self._node, self._index, self.requires_grad = None, 0, False
        return self

    # x += y and the other augmented assignments work in place, as in PyTorch (and NumPy):
    # every name bound to x sees the new values
    __iadd__, __isub__, __imul__, __itruediv__, __ipow__ = add_, sub_, mul_, div_, pow_

    def __setitem__(self, index, value) -> None:
        """x[index] = value: basic, integer-array and bool-mask indices, value broadcast."""
        _overwrite("setitem", self, prepare_index(backend.array_module(self.data), index),
                   value)


def bind(cls) -> None:
    """Set every method of :class:`InplaceMethods` on ``cls``."""
    for name, value in vars(InplaceMethods).items():
        if isinstance(value, types.FunctionType):
            setattr(cls, name, value)
