"""The differentiable ops, grouped by family; each is a Function plus a lower-case function.

Importing this package binds Tensor's operators and methods (:mod:`engine.ops.methods`) and
its in-place methods (:mod:`engine.ops.inplace`).
"""

from engine.ops import inplace, methods
from engine.tensor import Tensor

methods.bind(Tensor)
inplace.bind(Tensor)
