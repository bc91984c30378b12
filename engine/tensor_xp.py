"""A NumPy-like namespace over Tensors: what ``ctx.xp`` is when a backward builds a graph.

A backward formula written as ``gy * ctx.xp.exp(x)`` runs on raw arrays for first-order
gradients (``ctx.xp`` is NumPy or CuPy) and, under ``create_graph=True``, on Tensors
through these functions, so the same formula is differentiated again. They keep NumPy's
meanings where PyTorch's differ (``transpose(x, axes)``, ``max`` as a value, ``split``
into sections), since the formulas are written for NumPy.
"""

from engine.ops.compare import (  # noqa: F401
    equal, greater, greater_equal, isfinite, isnan, less, less_equal, logical_and,
    logical_not, logical_or, not_equal, sign, where,
)
from engine.ops.activation import erf, sigmoid, tanh  # noqa: F401
from engine.ops.elementwise import clip, maximum, minimum  # noqa: F401
from engine.ops.join import cat as concatenate  # noqa: F401
from engine.ops.join import stack, tensor_split  # noqa: F401
from engine.ops.linalg import matmul  # noqa: F401
from engine.ops.reduce import amax as max  # noqa: F401
from engine.ops.reduce import amin as min  # noqa: F401
from engine.ops.reduce import cumsum, logsumexp, mean, sum  # noqa: F401
from engine.ops.select import tril, triu  # noqa: F401
from engine.ops.shape import (  # noqa: F401
    broadcast_to, expand_dims, permute, reshape, reverse_dims, swapaxes,
)
from engine.ops.unary import abs, cos, exp, log, sin, sqrt  # noqa: F401


def transpose(x, axes=None):
    """NumPy's ``transpose``: permute the axes (reverse them when None)."""
    return reverse_dims(x) if axes is None else permute(x, axes)


def split(x, indices_or_sections, axis: int = 0):
    """NumPy's ``split``: ``n`` equal sections or the cut indices."""
    return tensor_split(x, indices_or_sections, axis)
