"""``Tensor``: one array (NumPy or CuPy) plus what autograd needs to know about it."""

from __future__ import annotations

import weakref

import numpy as np

from engine import backend, dtypes


def _as_array(data, dtype, device):
    """Build a fresh array from ``data`` the way ``torch.tensor`` does (always a copy)."""
    if isinstance(data, Tensor):
        data = data.data
    if device is not None:
        device = backend.parse_device(device)
    if isinstance(data, np.ndarray) or backend.is_cuda_array(data):
        xp = backend.array_module(data)
        arr = xp.array(data, dtype=dtype, copy=True)
    else:
        arr = np.array(data, dtype=dtype)
        if dtype is None and arr.dtype == np.float64:
            arr = arr.astype(dtypes.get_default_dtype())  # Python floats -> default dtype
    if device is not None:
        arr = backend.to_device(arr, device)
    return arr


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    ``Tensor(data, dtype=None, requires_grad=False, device=None)`` copies ``data`` (a
    nested list, a scalar, a NumPy or CuPy array, or a Tensor). Python floats become the
    default dtype (float32); arrays keep their dtype; Python ints become int64.
    """

    # _node, _index: the producer and which of its outputs this is (None, 0 for a leaf);
    # _accumulator: a leaf's weak reference to its gradient accumulator, set on first use.
    __slots__ = ("data", "grad", "requires_grad", "_node", "_index", "_accumulator",
                 "__weakref__")
    __array_ufunc__ = None   # ndarray (op) Tensor defers to Tensor's reflected operator
    __hash__ = object.__hash__

    def __init__(self, data, dtype=None, requires_grad: bool = False, device=None):
        self.data = _as_array(data, dtype, device)
        self.grad = None
        self.requires_grad = False
        self._node = None
        self._index = 0
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data, node, index):
        """Wrap an array without copying (internal fast path)."""
        t = object.__new__(cls)
        t.data = data
        t.grad = None
        t.requires_grad = node is not None
        t._node = node
        t._index = index
        return t

    def __getstate__(self):
        """Copies and pickles keep the data, gradient and graph position, not a leaf's
        cached accumulator (a weak reference that belongs to this object alone)."""
        return None, {k: getattr(self, k) for k in ("data", "grad", "requires_grad",
                                                    "_node", "_index") if hasattr(self, k)}

    # ---------------------------------------------------------------- attributes
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        """Number of elements (NumPy's ``size``; PyTorch's ``numel()``)."""
        return self.data.size

    def numel(self) -> int:
        return self.data.size

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self):
        """The node that produced this tensor (None for leaves)."""
        return self._node

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(backend.to_numpy(self.data), separator=", ", precision=4,
                               prefix="Tensor(")
        extra = "" if self.dtype == dtypes.get_default_dtype() else f", dtype={self.dtype}"
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self._node is not None:
            extra += f", grad_fn={type(self._node).__name__}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"Tensor({body}{extra})"

    # ---------------------------------------------------------------- autograd
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Mark a leaf as needing a gradient (only floating tensors can)."""
        if self._node is not None:
            raise RuntimeError(
                "requires_grad_: only leaf tensors can change requires_grad; "
                "use detach() to get a leaf"
            )
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype "
                f"{self.data.dtype} (shape {self.data.shape})"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> Tensor:
        """Keep ``.grad`` on this non-leaf tensor after backward (a leaf always keeps it).

        The producer records a weak reference to this output; backward sets its ``.grad``.
        """
        if not self.requires_grad:
            raise RuntimeError("retain_grad: the tensor does not require grad")
        node = self._node
        if node is not None:
            if node.retained is None:
                node.retained = []
            node.retained.append((self._index, weakref.ref(self)))
        return self

    def detach(self) -> Tensor:
        """A leaf sharing this tensor's data, cut from the graph."""
        return Tensor._make(self.data, None, 0)

    def backward(self, grad=None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``."""
        from engine.autograd import backward

        backward([self], [grad], retain_graph=retain_graph, create_graph=create_graph)

    # ---------------------------------------------------------------- devices
    def to(self, device=None, dtype=None) -> Tensor:
        """A copy on ``device`` and/or cast to ``dtype`` (self if nothing changes)."""
        out = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            out = astype(out, dtype)
        if device is not None:
            device = backend.parse_device(device)
            if device != out.device:
                out = to_device(out, device)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, index: int = 0) -> Tensor:
        return self.to(f"cuda:{index}")

    def numpy(self) -> np.ndarray:
        """A host NumPy copy of the data (never a view the caller could corrupt)."""
        return np.array(backend.to_numpy(self.data), copy=True)

    def item(self):
        if self.data.size != 1:
            raise ValueError(
                f"item(): only one-element tensors can be converted, got shape {self.shape}"
            )
        return self.data.reshape(()).item()

    def tolist(self):
        return backend.to_numpy(self.data).tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index, got {self.dtype}")
        return int(self.item())

    def astype(self, dtype) -> Tensor:
        return astype(self, dtype)

    def float(self) -> Tensor:
        return astype(self, np.float32)

    def double(self) -> Tensor:
        return astype(self, np.float64)

    def long(self) -> Tensor:
        return astype(self, np.int64)

    # ---------------------------------------------------------------- operators
    def __add__(self, other):
        return Add.apply(self, other)

    def __radd__(self, other):
        return Add.apply(other, self)

    def __sub__(self, other):
        return Sub.apply(self, other)

    def __rsub__(self, other):
        return Sub.apply(other, self)

    def __mul__(self, other):
        return Mul.apply(self, other)

    def __rmul__(self, other):
        return Mul.apply(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __pow__(self, other):
        return pow(self, other)

    def __rpow__(self, other):
        return pow(other, self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __neg__(self):
        return neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return abs(self)

    def __eq__(self, other):
        return equal(self, other)

    def __ne__(self, other):
        return not_equal(self, other)

    def __lt__(self, other):
        return less(self, other)

    def __le__(self, other):
        return less_equal(self, other)

    def __gt__(self, other):
        return greater(self, other)

    def __ge__(self, other):
        return greater_equal(self, other)

    def __and__(self, other):
        return logical_and(self, other)

    def __rand__(self, other):
        return logical_and(other, self)

    def __or__(self, other):
        return logical_or(self, other)

    def __ror__(self, other):
        return logical_or(other, self)

    def __invert__(self):
        return logical_not(self)

    def __getitem__(self, index):
        return getitem(self, index)

    def __setitem__(self, index, value):
        raise TypeError(
            "Tensor does not support item assignment (it would break the recorded graph); "
            "build the result with engine.where / engine.concatenate, or edit .data "
            "under no_grad"
        )

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    # ---------------------------------------------------------------- methods
    def sum(self, axis=None, keepdims=False):
        return sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return mean(self, axis, keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        return var(self, axis, keepdims, ddof)

    def std(self, axis=None, keepdims=False, ddof=0):
        return sqrt(var(self, axis, keepdims, ddof))

    def max(self, axis=None, keepdims=False):
        return max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return min(self, axis, keepdims)

    def argmax(self, axis=None, keepdims=False):
        return argmax(self, axis, keepdims)

    def argmin(self, axis=None, keepdims=False):
        return argmin(self, axis, keepdims)

    def logsumexp(self, axis=None, keepdims=False):
        return logsumexp(self, axis, keepdims)

    def exp(self):
        return exp(self)

    def log(self):
        return log(self)

    def sqrt(self):
        return sqrt(self)

    def abs(self):
        return abs(self)

    def tanh(self):
        return tanh(self)

    def sigmoid(self):
        return sigmoid(self)

    def relu(self):
        return relu(self)

    def clip(self, min=None, max=None):
        return clip(self, min, max)

    def softmax(self, axis=-1):
        return softmax(self, axis)

    def log_softmax(self, axis=-1):
        return log_softmax(self, axis)

    def matmul(self, other):
        return matmul(self, other)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return reshape(self, shape)

    def view(self, *shape):
        return self.reshape(*shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return transpose(self, axes or None)

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return transpose(self, axes)

    def swapaxes(self, axis1, axis2):
        return swapaxes(self, axis1, axis2)

    @property
    def T(self):
        return transpose(self, None)

    @property
    def mT(self):
        return swapaxes(self, -1, -2)

    def flatten(self, start_axis=0, end_axis=-1):
        return flatten(self, start_axis, end_axis)

    def squeeze(self, axis=None):
        return squeeze(self, axis)

    def unsqueeze(self, axis):
        return unsqueeze(self, axis)

    def expand_dims(self, axis):
        return unsqueeze(self, axis)

    def broadcast_to(self, shape):
        return broadcast_to(self, shape)


def astype(x: Tensor, dtype) -> Tensor:
    """Cast (differentiable between floating dtypes)."""
    return Cast.apply(x, dtype=np.dtype(dtype))


def to_device(x: Tensor, device: str) -> Tensor:
    """Copy to a device (differentiable: the gradient comes back to the source device)."""
    return ToDevice.apply(x, device=device)


# Operator implementations, bound here once the op modules exist (they import Tensor).
from engine.ops.elementwise import (  # noqa: E402
    Add, Cast, Mul, Sub, abs, clip, div, exp, log, neg, pow, relu, sigmoid, sqrt, tanh,
)
from engine.ops.compare import (  # noqa: E402
    equal, greater, greater_equal, less, less_equal, logical_and, logical_not, logical_or,
    not_equal,
)
from engine.ops.reduce import (  # noqa: E402
    argmax, argmin, logsumexp, max, mean, min, sum, var,
)
from engine.ops.shape import (  # noqa: E402
    ToDevice, broadcast_to, flatten, reshape, squeeze, swapaxes, transpose, unsqueeze,
)
from engine.ops.indexing import getitem  # noqa: E402
from engine.ops.linalg import matmul  # noqa: E402
from engine.ops.softmax import log_softmax, softmax  # noqa: E402
