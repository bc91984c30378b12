"""Fused ops: softmax, log-softmax, cross-entropy, layer norm, scaled dot-product attention.

Each op has three implementations behind one dispatch point (:mod:`engine.kernels.api`):

- ``reference`` (:mod:`engine.kernels.reference`): the literal formula in array code,
  forward and backward, on NumPy or CuPy; what ``engine.use_fused(False)`` runs. Its
  backward formulas also run on Tensors, so second derivatives work through it.
- ``cpu`` (:mod:`engine.kernels.cpu`): Numba ``@njit`` kernels, parallel over rows (over
  heads for attention, whose matrix products stay on BLAS), compiled once and cached.
- ``cuda`` (:mod:`engine.kernels.cuda`): Numba CUDA kernels launched on CuPy arrays (matrix
  products on cuBLAS); tested without a GPU under Numba's CUDA simulator.

Fused is the default for float32 and float64 data (other dtypes take the reference);
``engine.use_fused(False)`` (also a context manager) forces the reference path everywhere.
Fused softmax and log-softmax are differentiable twice; the other fused ops once (their
backward uses saved intermediates): under ``create_graph`` they ask for ``use_fused(False)``.

In attention, a query whose keys are all masked gets probabilities 0 and an output of 0 on
every path, never NaN.
"""

from engine.kernels.switch import fused_enabled, implementation, use_fused
from engine.kernels.api import (
    cross_entropy, layer_norm, log_softmax, scaled_dot_product_attention, softmax,
)

__all__ = [
    "use_fused", "fused_enabled", "implementation", "softmax", "log_softmax",
    "cross_entropy", "layer_norm", "scaled_dot_product_attention",
]
