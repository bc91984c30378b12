"""Tensor's operators and methods: each one is an engine op, bound onto ``Tensor`` here.

``Tensor`` (:mod:`engine.tensor`) sits below the ops in the engine's layers, so it cannot
import them; :class:`TensorMethods` lists the methods as they read on a Tensor, and
:func:`bind` copies them onto the class when :mod:`engine.ops` is imported (DeZero's
``setup_variable``). A new Tensor method that is an op goes here.
"""

from __future__ import annotations

import types

import numpy as np

from engine import autograd, backend
from engine.ops.activation import relu, sigmoid, tanh
from engine.ops.compare import (
    equal, greater, greater_equal, less, less_equal, logical_and, logical_not, logical_or,
    not_equal,
)
from engine.function import apply_pair
from engine.ops.elementwise import (
    Add, Div, Mul, Sub, abs, astype, clip, exp, log, neg, pow, sqrt,
)
from engine.ops.indexing import getitem
from engine.ops.linalg import matmul
from engine.ops.reduce import argmax, argmin, logsumexp, max, mean, min, sum, var
from engine.ops.shape import (
    broadcast_to, flatten, reshape, squeeze, swapaxes, to_device, transpose, unsqueeze,
)
from engine.ops.softmax import log_softmax, softmax
from engine.tensor import Tensor


class TensorMethods:
    """The methods ``Tensor`` gets from the ops (never instantiated)."""

    def backward(self, grad=None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``."""
        autograd.backward([self], [grad], retain_graph=retain_graph,
                          create_graph=create_graph)

    # ---------------------------------------------------------------- devices, dtypes
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
        return apply_pair(Add, self, other)

    def __radd__(self, other):
        return apply_pair(Add, other, self)

    def __sub__(self, other):
        return apply_pair(Sub, self, other)

    def __rsub__(self, other):
        return apply_pair(Sub, other, self)

    def __mul__(self, other):
        return apply_pair(Mul, self, other)

    def __rmul__(self, other):
        return apply_pair(Mul, other, self)

    def __truediv__(self, other):
        return apply_pair(Div, self, other)

    def __rtruediv__(self, other):
        return apply_pair(Div, other, self)

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


def bind(cls) -> None:
    """Set every method and property of :class:`TensorMethods` on ``cls``."""
    for name, value in vars(TensorMethods).items():
        if isinstance(value, (types.FunctionType, property)):
            setattr(cls, name, value)
