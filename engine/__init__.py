"""xpgrad's engine: Tensor, reverse-mode autograd, ops, devices, gradient checking, checkpoints.

    >>> import engine
    >>> x = engine.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    Tensor([2., 4., 6.])
"""

from engine.tensor import Tensor
from engine.function import (
    Function, detect_anomaly, enable_grad, is_grad_enabled, no_grad, set_grad_enabled,
)
from engine.autograd import backward, grad
from engine.backend import cuda_is_available, synchronize
from engine.dtypes import get_default_dtype, set_default_dtype
from engine.random import (
    Generator, default_generator, get_rng_state, initial_seed, manual_seed, set_rng_state,
)
from engine.factory import (
    arange, empty, eye, from_numpy, full, full_like, linspace, ones, ones_like, rand,
    randint, randn, randperm, tensor, zeros, zeros_like,
)
from engine.ops.elementwise import (
    abs, add, clip, div, exp, log, maximum, minimum, mul, neg, pow, sqrt, sub,
)
from engine.ops.activation import erf, gelu, leaky_relu, relu, sigmoid, softplus, tanh
from engine.ops.compare import (
    equal, greater, greater_equal, isfinite, isnan, less, less_equal, logical_and,
    logical_not, logical_or, not_equal, one_hot, sign, where,
)
from engine.ops.reduce import argmax, argmin, logsumexp, max, mean, min, std, sum, var
from engine.ops.shape import (
    broadcast_to, concatenate, expand_dims, flatten, pad, permute, reshape, split,
    squeeze, stack, swapaxes, transpose, unsqueeze,
)
from engine.ops.indexing import getitem, index_add, scatter_add
from engine.ops.linalg import linear, matmul
from engine.ops.softmax import log_softmax, softmax
from engine.ops.norm import batch_norm, layer_norm
from engine.ops.loss import binary_cross_entropy, cross_entropy
from engine.ops.attention import scaled_dot_product_attention
from engine.ops.conv import conv2d
from engine.ops.pool import avg_pool2d, max_pool2d
from engine.ops.embedding import embedding
from engine.kernels import fused_enabled, use_fused
from engine.gradcheck import GradcheckError, gradcheck, gradgradcheck
from engine.serialization import CheckpointError, load, save
from engine.graph_view import draw_graph

__all__ = [
    "Tensor", "Function", "backward", "grad", "no_grad", "enable_grad", "set_grad_enabled",
    "is_grad_enabled", "detect_anomaly", "cuda_is_available", "synchronize",
    "get_default_dtype", "set_default_dtype", "manual_seed", "default_generator",
    "initial_seed", "get_rng_state", "set_rng_state", "Generator",
    "tensor", "from_numpy", "zeros", "ones", "empty", "full", "zeros_like", "ones_like",
    "full_like", "arange", "linspace", "eye", "rand", "randn", "randint", "randperm",
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs", "maximum",
    "minimum", "clip", "tanh", "sigmoid", "relu", "leaky_relu", "gelu", "softplus", "erf",
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and",
    "logical_or", "logical_not", "isfinite", "isnan", "sign", "where", "one_hot",
    "sum", "mean", "var", "std", "max", "min", "logsumexp", "argmax", "argmin",
    "reshape", "transpose", "permute", "swapaxes", "broadcast_to", "squeeze", "unsqueeze",
    "expand_dims", "flatten", "concatenate", "stack", "split", "pad",
    "getitem", "index_add", "scatter_add", "matmul", "softmax", "log_softmax",
    "linear", "conv2d", "max_pool2d", "avg_pool2d", "layer_norm", "batch_norm", "embedding",
    "cross_entropy", "binary_cross_entropy", "scaled_dot_product_attention",
    "use_fused", "fused_enabled",
    "gradcheck", "gradgradcheck", "GradcheckError", "save", "load", "CheckpointError",
    "draw_graph",
]
