"""Fused ops: softmax, log-softmax, cross-entropy, layer norm, scaled dot-product attention.

Each op has three implementations behind one dispatch point (:mod:`engine.kernels.api`):

- ``reference`` (:mod:`engine.kernels.reference`): the literal formula in array code,
  forward and backward, on NumPy or CuPy; what ``engine.use_fused(False)`` runs;
- ``cpu`` (:mod:`engine.kernels.cpu`): Numba ``@njit`` kernels, parallel over rows;
- ``cuda`` (:mod:`engine.kernels.cuda`): Numba CUDA kernels launched on CuPy arrays.

Fused is the default for float32 and float64 data; ``engine.use_fused(False)`` (also a
context manager) forces the reference path everywhere.
"""

from engine.kernels.switch import fused_enabled, implementation, use_fused
from engine.kernels.api import (
    cross_entropy, layer_norm, log_softmax, scaled_dot_product_attention, softmax,
)

__all__ = [
    "use_fused", "fused_enabled", "implementation", "softmax", "log_softmax",
    "cross_entropy", "layer_norm", "scaled_dot_product_attention",
]
