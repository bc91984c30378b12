"""The named tuples of the ops that return values and indices, PyTorch's
``torch.return_types``: ``values, indices = x.max(dim=1)``, or ``x.max(dim=1).indices``."""

from collections import namedtuple

max = namedtuple("max", ["values", "indices"])
min = namedtuple("min", ["values", "indices"])
sort = namedtuple("sort", ["values", "indices"])
topk = namedtuple("topk", ["values", "indices"])
median = namedtuple("median", ["values", "indices"])

__all__ = ["max", "min", "sort", "topk", "median"]
