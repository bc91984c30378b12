"""The differentiable ops, grouped by family; each is a Function plus a lower-case function.

The layers below the ops (``Tensor``, ``Function``, the backward walk) cannot import them,
so importing this package wires the ops in: it binds Tensor's operators and methods
(:mod:`engine.ops.methods`) and its in-place methods (:mod:`engine.ops.inplace`), and hands
the backward walk :data:`tensor_xp`, what ``ctx.xp`` is when a backward builds a graph.
"""

import types

from engine import autograd
from engine.ops import (
    activation, compare, elementwise, inplace, join, linalg, methods, reduce, select, shape,
    unary,
)
from engine.tensor import Tensor


def _numpy_transpose(x, axes=None):
    """NumPy's ``transpose``: permute the axes (reverse them when None)."""
    return shape.reverse_dims(x) if axes is None else shape.permute(x, axes)


def _numpy_split(x, indices_or_sections, axis: int = 0):
    """NumPy's ``split``: ``n`` equal sections or the cut indices."""
    return join.tensor_split(x, indices_or_sections, axis)


# A NumPy-like namespace over Tensors. A backward formula written as ``gy * ctx.xp.exp(x)``
# runs on raw arrays for first-order gradients (``ctx.xp`` is NumPy or CuPy) and, under
# ``create_graph=True``, on Tensors through these ops, so the same formula is differentiated
# again. NumPy's meanings are kept where PyTorch's differ (``transpose(x, axes)``, ``max``
# as a value, ``split`` into sections), since the formulas are written for NumPy.
tensor_xp = types.SimpleNamespace(
    equal=compare.equal, greater=compare.greater, greater_equal=compare.greater_equal,
    isfinite=compare.isfinite, isnan=compare.isnan, less=compare.less,
    less_equal=compare.less_equal, logical_and=compare.logical_and,
    logical_not=compare.logical_not, logical_or=compare.logical_or,
    not_equal=compare.not_equal, sign=compare.sign, where=compare.where,
    erf=activation.erf, sigmoid=activation.sigmoid, tanh=activation.tanh,
    clip=elementwise.clip, maximum=elementwise.maximum, minimum=elementwise.minimum,
    concatenate=join.cat, stack=join.stack, tensor_split=join.tensor_split, split=_numpy_split,
    matmul=linalg.matmul,
    max=reduce.amax, min=reduce.amin, cumsum=reduce.cumsum, logsumexp=reduce.logsumexp,
    mean=reduce.mean, sum=reduce.sum,
    tril=select.tril, triu=select.triu,
    broadcast_to=shape.broadcast_to, expand_dims=shape.expand_dims, permute=shape.permute,
    reshape=shape.reshape, reverse_dims=shape.reverse_dims, swapaxes=shape.swapaxes,
    transpose=_numpy_transpose,
    abs=unary.abs, cos=unary.cos, exp=unary.exp, log=unary.log, sin=unary.sin,
    sqrt=unary.sqrt,
)

methods.bind(Tensor)
inplace.bind(Tensor)
autograd.use_tensor_namespace(tensor_xp)
