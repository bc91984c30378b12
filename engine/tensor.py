"""``Tensor``: one array (NumPy or CuPy) plus what autograd needs to know about it.

This module holds what a Tensor is (its data, its attributes, its place in the graph, its
conversions to Python and NumPy). Its operators and its methods that compute (``+``,
``x.sum()``, ``x.to(device)``, ``x.backward()``, ...) are engine ops, bound onto the class
by :mod:`engine.ops.methods` when :mod:`engine` is imported.
"""

from __future__ import annotations

import weakref

import numpy as np

from engine import backend, dtypes, versions


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


class Size(tuple):
    """A tensor's shape as :meth:`Tensor.size` returns it (PyTorch's ``torch.Size``): a
    tuple of ints that also knows its number of elements."""

    __slots__ = ()

    def numel(self) -> int:
        n = 1
        for d in self:
            n *= d
        return n

    def __repr__(self) -> str:
        return f"engine.Size({list(self)})"

    def __getitem__(self, index):
        item = tuple.__getitem__(self, index)
        return Size(item) if isinstance(index, slice) else item

    def __add__(self, other):
        return Size(tuple.__add__(self, tuple(other)))


def _arrays_in(value):
    """``value`` with every Tensor in it (in lists, tuples and dicts too) as its array."""
    if isinstance(value, Tensor):
        return value.__array__()
    if isinstance(value, (list, tuple)):
        items = [_arrays_in(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k: _arrays_in(v) for k, v in value.items()}
    return value


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

    def size(self, dim: int | None = None):
        """The shape as an :class:`engine.Size` (PyTorch's ``size()``), or the length of
        axis ``dim``. NumPy's ``size`` (the number of elements) is :meth:`numel`."""
        shape = self.data.shape
        if dim is None:
            return Size(shape)
        if not -len(shape) <= dim < len(shape):
            raise IndexError(f"size: dim {dim} is out of range for a {len(shape)}-d tensor "
                             f"of shape {shape}")
        return shape[dim]

    def dim(self) -> int:
        """The number of axes (``ndim``)."""
        return self.data.ndim

    ndimension = dim

    def numel(self) -> int:
        """The number of elements (NumPy's ``size``)."""
        return self.data.size

    nelement = numel

    @property
    def device(self) -> backend.device:
        """Where the data lives: ``device('cpu')`` or ``device('cuda:N')``, equal to its
        name as a string."""
        return backend.device_object(backend.device_of(self.data))

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def _version(self) -> int:
        """How many in-place writes the memory of this tensor has had (PyTorch's
        ``x._version``; shared by every tensor on the same memory, see engine.versions)."""
        return versions.version(self.data)

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

    # ---------------------------------------------------------------- conversions
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

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """``np.asarray(t)``: the data itself on the CPU, a new array when ``dtype`` or
        ``copy=True`` asks for one (NumPy 2's protocol). A CUDA tensor raises, as PyTorch's
        does, rather than copy to the host behind the caller's back."""
        data = self.data
        if not isinstance(data, np.ndarray):
            raise TypeError(f"can't convert a {self.device} tensor of shape {self.shape} to a "
                            "NumPy array; move it to the host with .cpu() (or .numpy()) first")
        if dtype is not None and np.dtype(dtype) != data.dtype:
            if copy is False:
                raise ValueError(f"__array__: converting {data.dtype} to {np.dtype(dtype)} "
                                 "needs a copy, but copy=False was asked for")
            return data.astype(dtype)
        return data.copy() if copy else data

    def __array_function__(self, func, types, args, kwargs):
        """NumPy functions (``np.mean(t)``, ``np.concatenate([t, u])``, ...) see each Tensor
        as its array: their results are NumPy's, outside any graph."""
        return func(*_arrays_in(args), **_arrays_in(kwargs))

    def __format__(self, spec: str) -> str:
        """``f"{loss:.4f}"``: a 0-d tensor formats as its number, as in PyTorch; any other
        takes only the empty format (its repr)."""
        if self.data.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

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

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))
