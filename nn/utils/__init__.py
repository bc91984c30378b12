"""PyTorch's ``torch.nn.utils``: gradient clipping (the very functions of :mod:`optim`) and
the conversion between a model's parameters and one flat vector."""

from __future__ import annotations

from engine.ops.join import cat
from engine.ops.shape import reshape
from engine.tensor import Tensor
from optim.clip import clip_grad_norm_, clip_grad_value_

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector",
           "vector_to_parameters"]


def parameters_to_vector(parameters) -> Tensor:
    """All parameters flattened and joined into one vector, in order (differentiable:
    the gradient of the vector flows back to each parameter)."""
    return cat([reshape(p, (-1,)) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Make each parameter a view of its piece of ``vec``, in order (as PyTorch does, the
    parameters then share ``vec``'s memory)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected a Tensor, got "
                        f"{type(vec).__name__}")
    params = list(parameters)
    total = sum(p.data.size for p in params)
    if vec.ndim != 1 or vec.data.size != total:
        raise ValueError(f"vector_to_parameters: got {vec.data.size} values for parameters of "
                         f"{total} elements in all (a vector of shape {vec.shape})")
    start = 0
    for p in params:
        n = p.data.size
        p.data = vec.data[start:start + n].reshape(p.shape)
        start += n
