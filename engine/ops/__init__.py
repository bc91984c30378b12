"""The differentiable ops, grouped by family; each is a Function plus a lower-case function.

Importing this package binds Tensor's operators and methods (:mod:`engine.ops.methods`).
"""

from engine.ops import methods
from engine.tensor import Tensor

methods.bind(Tensor)
