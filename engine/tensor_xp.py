"""A NumPy-like namespace over Tensors: what ``ctx.xp`` is when a backward builds a graph.

A backward formula written as ``gy * ctx.xp.exp(x)`` runs on raw arrays for first-order
gradients (``ctx.xp`` is NumPy or CuPy) and, under ``create_graph=True``, on Tensors
through these functions, so the same formula is differentiated again.
"""

from engine.ops.compare import (  # noqa: F401
    equal, greater, greater_equal, isfinite, isnan, less, less_equal, logical_and,
    logical_not, logical_or, not_equal, sign, where,
)
from engine.ops.activation import erf, sigmoid, tanh  # noqa: F401
from engine.ops.elementwise import (  # noqa: F401
    abs, clip, exp, log, maximum, minimum, sqrt,
)
from engine.ops.shape import (  # noqa: F401
    broadcast_to, concatenate, expand_dims, reshape, split, stack, swapaxes, transpose,
)
from engine.ops.reduce import logsumexp, max, mean, min, sum  # noqa: F401
from engine.ops.linalg import matmul  # noqa: F401
