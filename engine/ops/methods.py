"""Tensor's operators and methods: each one is an engine op, bound onto ``Tensor`` here.

``Tensor`` (:mod:`engine.tensor`) sits below the ops in the engine's layers, so it cannot
import them; :func:`bind` sets them on the class when :mod:`engine.ops` is imported
(DeZero's ``setup_variable``). An op whose first argument is the tensor becomes a method as
it is (``x.sum(dim=1)`` is ``engine.sum(x, dim=1)``): it goes in :data:`FUNCTIONS`. A
method whose signature differs from the function's (varargs shapes, ``to``, properties)
goes in :class:`TensorMethods`. The meanings are PyTorch's: ``x.transpose(0, 1)`` swaps
two axes, ``x.size()`` is the shape, ``x.max(1)`` gives ``(values, indices)``.
"""

from __future__ import annotations

import types

import numpy as np

from engine import autograd, backend, dtypes, factory
from engine.ops import compare, elementwise, indexing, join, linalg, reduce, select, shape
from engine.ops import unary
from engine.ops.activation import log_softmax, relu, sigmoid, softmax, tanh
from engine.function import apply_pair
from engine.ops.elementwise import Add, Div, Mul, Sub
from engine.tensor import Tensor

# name -> function(tensor, ...): bound as the method of that name
FUNCTIONS = {
    # arithmetic
    "add": elementwise.add, "sub": elementwise.sub, "mul": elementwise.mul,
    "div": elementwise.div, "pow": elementwise.pow, "neg": elementwise.neg,
    "maximum": elementwise.maximum, "minimum": elementwise.minimum,
    "clamp": elementwise.clamp, "clip": elementwise.clip, "matmul": linalg.matmul,
    "exp": unary.exp, "log": unary.log, "sqrt": unary.sqrt, "abs": unary.abs,
    "sin": unary.sin, "cos": unary.cos, "tanh": tanh, "sigmoid": sigmoid, "relu": relu,
    "softmax": softmax, "log_softmax": log_softmax,
    # comparisons
    "eq": compare.eq, "ne": compare.ne, "lt": compare.lt, "le": compare.le,
    "gt": compare.gt, "ge": compare.ge, "logical_and": compare.logical_and,
    "logical_or": compare.logical_or, "logical_not": compare.logical_not,
    "isnan": compare.isnan, "isfinite": compare.isfinite,
    # reductions
    "sum": reduce.sum, "mean": reduce.mean, "var": reduce.var, "std": reduce.std,
    "max": reduce.max, "min": reduce.min, "amax": reduce.amax, "amin": reduce.amin,
    "argmax": reduce.argmax, "argmin": reduce.argmin, "logsumexp": reduce.logsumexp,
    "cumsum": reduce.cumsum, "all": reduce.all, "any": reduce.any, "norm": linalg.norm,
    # shapes
    "transpose": shape.transpose, "swapaxes": shape.swapaxes, "swapdims": shape.swapdims,
    "t": shape.t, "squeeze": shape.squeeze, "unsqueeze": shape.unsqueeze,
    "expand_dims": shape.expand_dims, "flatten": shape.flatten, "expand": shape.expand,
    "broadcast_to": shape.broadcast_to, "clone": shape.clone,
    "contiguous": shape.contiguous,
    # joining, splitting, selecting
    "split": join.split, "chunk": join.chunk, "tensor_split": join.tensor_split,
    "narrow": join.narrow, "repeat": join.repeat, "tile": join.tile,
    "repeat_interleave": join.repeat_interleave, "flip": join.flip,
    "gather": indexing.gather, "tril": select.tril, "triu": select.triu,
    "masked_fill": select.masked_fill, "sort": select.sort, "argsort": select.argsort,
    "topk": select.topk, "median": select.median,
    # creation
    "new_tensor": factory.new_tensor, "new_zeros": factory.new_zeros,
    "new_ones": factory.new_ones, "new_empty": factory.new_empty,
    "new_full": factory.new_full, "multinomial": factory.multinomial,
}


def _is_device(value) -> bool:
    """A string that names no dtype is a device (an unknown one is reported as such)."""
    if not isinstance(value, str) or isinstance(value, backend.device):
        return isinstance(value, backend.device)
    try:
        np.dtype(value)
    except TypeError:
        return True
    return False


class TensorMethods:
    """The methods ``Tensor`` gets from the ops beyond :data:`FUNCTIONS` (never
    instantiated)."""

    def backward(self, gradient=None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``."""
        autograd.backward([self], [gradient], retain_graph=retain_graph,
                          create_graph=create_graph)

    # ---------------------------------------------------------------- devices, dtypes
    def to(self, *args, dtype=None, device=None, non_blocking: bool = False,
           copy: bool = False) -> Tensor:
        """PyTorch's ``to``: ``to(dtype)``, ``to(device)``, ``to(device, dtype)``,
        ``to(other)`` (other's dtype and device), or the keywords. Returns ``self`` when
        nothing changes (unless ``copy``); differentiable."""
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif _is_device(a):
                device = a
            else:
                dtype = a
        out = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            out = elementwise.astype(out, dtype)
        if device is not None:
            device = backend.parse_device(device)
            if device != out.device:
                out = shape.to_device(out, device)
        if copy and out is self:
            out = shape.Clone.apply(self)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device=None) -> Tensor:
        if device is None or isinstance(device, int):
            device = f"cuda:{device or 0}"
        return self.to(device)

    def astype(self, dtype) -> Tensor:
        """NumPy's cast (always a new tensor)."""
        return elementwise.astype(self, dtype)

    def type(self, dtype=None, non_blocking: bool = False):
        """PyTorch's ``type``: without ``dtype`` the type's name (``'engine.FloatTensor'``,
        ``'engine.cuda.FloatTensor'``); with one, this tensor in that dtype (``self``
        when it already is). ``dtype`` may also be such a name."""
        if dtype is None:
            prefix = "engine." if self.device == "cpu" else "engine.cuda."
            return prefix + dtypes.TENSOR_TYPES[self.dtype]
        if isinstance(dtype, str):
            by_name = {name: dt for dt, name in dtypes.TENSOR_TYPES.items()}
            dtype = by_name.get(dtype.rsplit(".", 1)[-1], dtype)
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise ValueError(f"type: invalid type {dtype!r}") from None
        return self.to(dtype)

    def type_as(self, other) -> Tensor:
        """This tensor in ``other``'s dtype."""
        return self.to(other.dtype)

    def float(self) -> Tensor:
        return self.to(dtypes.float32)

    def double(self) -> Tensor:
        return self.to(dtypes.float64)

    def half(self) -> Tensor:
        return self.to(dtypes.float16)

    def long(self) -> Tensor:
        return self.to(dtypes.int64)

    def int(self) -> Tensor:
        return self.to(dtypes.int32)

    def bool(self) -> Tensor:
        return self.to(dtypes.bool_)

    # ---------------------------------------------------------------- operators
    def __add__(self, other):
        return apply_pair(Add, self, other, elementwise.add)

    def __radd__(self, other):
        return apply_pair(Add, other, self, elementwise.add)

    def __sub__(self, other):
        return apply_pair(Sub, self, other, elementwise.sub)

    def __rsub__(self, other):
        return apply_pair(Sub, other, self, elementwise.sub)

    def __mul__(self, other):
        return apply_pair(Mul, self, other, elementwise.mul)

    def __rmul__(self, other):
        return apply_pair(Mul, other, self, elementwise.mul)

    def __truediv__(self, other):
        return apply_pair(Div, self, other, elementwise.div)

    def __rtruediv__(self, other):
        return apply_pair(Div, other, self, elementwise.div)

    def __pow__(self, other):
        return elementwise.pow(self, other)

    def __rpow__(self, other):
        return elementwise.pow(other, self)

    def __matmul__(self, other):
        return linalg.matmul(self, other)

    def __rmatmul__(self, other):
        return linalg.matmul(other, self)

    def __neg__(self):
        return elementwise.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return unary.abs(self)

    def __eq__(self, other):
        return compare.equal(self, other)

    def __ne__(self, other):
        return compare.not_equal(self, other)

    def __lt__(self, other):
        return compare.less(self, other)

    def __le__(self, other):
        return compare.less_equal(self, other)

    def __gt__(self, other):
        return compare.greater(self, other)

    def __ge__(self, other):
        return compare.greater_equal(self, other)

    def __and__(self, other):
        return compare.logical_and(self, other)

    def __rand__(self, other):
        return compare.logical_and(other, self)

    def __or__(self, other):
        return compare.logical_or(self, other)

    def __ror__(self, other):
        return compare.logical_or(other, self)

    def __invert__(self):
        return compare.logical_not(self)

    def __getitem__(self, index):
        return indexing.getitem(self, index)

    # ---------------------------------------------------------------- shapes
    def reshape(self, *shape_) -> Tensor:
        """``x.reshape(2, -1)`` or ``x.reshape((2, -1))``."""
        return shape.reshape(self, shape.size_args(shape_))

    def view(self, *shape_) -> Tensor:
        """``x.view(2, -1)``: the same memory seen with another shape. Where the strides
        allow no such view, an error, as in PyTorch (:meth:`reshape` copies then)."""
        return _view("view", self, shape.size_args(shape_))

    def view_as(self, other) -> Tensor:
        return _view("view_as", self, other.shape)

    def reshape_as(self, other) -> Tensor:
        return shape.reshape(self, other.shape)

    def expand_as(self, other) -> Tensor:
        return shape.broadcast_to(self, other.shape)

    def permute(self, *dims) -> Tensor:
        """``x.permute(2, 0, 1)`` or ``x.permute((2, 0, 1))``: axis i of the result is axis
        ``dims[i]`` of ``x``."""
        return shape.permute(self, shape.size_args(dims))

    @property
    def T(self) -> Tensor:
        """All axes reversed (a matrix's transpose)."""
        return shape.reverse_dims(self)

    @property
    def mT(self) -> Tensor:
        """The last two axes swapped (a batch of matrices transposed)."""
        if self.ndim < 2:
            raise ValueError(f"mT: expects at least 2 axes, got shape {self.shape}")
        return shape.transpose(self, -2, -1)

    def where(self, condition, other) -> Tensor:
        """``self`` where ``condition`` holds, else ``other`` (PyTorch's ``x.where``)."""
        return compare.where(condition, self, other)


def _view(op: str, x: Tensor, size) -> Tensor:
    """``reshape``, refused where it had to copy (only a non-contiguous array can need
    it: a copy shares no memory with ``x``)."""
    out = shape.reshape(x, size)
    a = x.data
    if (a.size and not a.flags.c_contiguous
            and not backend.array_module(a).may_share_memory(a, out.data)):
        raise RuntimeError(
            f"{op}: shape {tuple(out.shape)} is not compatible with the strides of the input "
            f"of shape {x.shape} (a dim would span two separate blocks of memory); use "
            ".reshape(...), which copies where it must")
    return out


def bind(cls) -> None:
    """Set every function of :data:`FUNCTIONS` and every method and property of
    :class:`TensorMethods` on ``cls``."""
    for name, fn in FUNCTIONS.items():
        setattr(cls, name, fn)
    for name, value in vars(TensorMethods).items():
        if isinstance(value, (types.FunctionType, property)):
            setattr(cls, name, value)
