"""Softmax and log-softmax: the engine's entry points, dispatched to the fused kernels.

The literal formulas live in :mod:`engine.kernels.reference` (``Softmax``, ``LogSoftmax``);
``engine.use_fused(False)`` makes these functions run them.
"""

from engine.kernels.api import log_softmax, softmax
from engine.kernels.reference import LogSoftmax, Softmax

__all__ = ["Softmax", "LogSoftmax", "softmax", "log_softmax"]
