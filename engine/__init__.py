"""xpgrad's engine: Tensor, reverse-mode autograd, ops, devices, gradient checking, checkpoints.

    >>> import engine
    >>> x = engine.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    Tensor([2., 4., 6.])
"""

from engine import memory  # noqa: F401  (freed host memory kept for reuse, see its docstring)
from engine.tensor import Size, Tensor
from engine.function import (
    Function, detect_anomaly, enable_grad, is_grad_enabled, no_grad, set_grad_enabled,
)
from engine.autograd import backward, grad
from engine.backend import cuda_is_available, device, synchronize
from engine.dtypes import (
    bool_, double, float16, float32, float64, get_default_dtype, half, int8, int16,
    int32, int64, long, promote_types, result_type, set_default_dtype, short, uint8,
)
from engine.random import (
    Generator, default_generator, get_rng_state, initial_seed, manual_seed, set_rng_state,
)
from engine.factory import (
    arange, empty, empty_like, eye, from_numpy, full, full_like, linspace, multinomial,
    ones, ones_like, rand, rand_like, randint, randint_like, randn, randn_like, randperm,
    tensor, zeros, zeros_like,
)
from engine.ops.elementwise import (
    add, clamp, clip, div, maximum, minimum, mul, neg, pow, sub,
)
from engine.ops.unary import abs, cos, exp, log, sin, sqrt
from engine.ops.activation import erf, gelu, leaky_relu, relu, sigmoid, softplus, tanh
from engine.ops.compare import (
    eq, equal, ge, greater, greater_equal, gt, isfinite, isnan, le, less, less_equal,
    logical_and, logical_not, logical_or, lt, ne, not_equal, one_hot, sign, where,
)
from engine.ops.reduce import (
    all, amax, amin, any, argmax, argmin, cumsum, logsumexp, max, mean, min, std, sum, var,
)
from engine.ops.shape import (
    broadcast_to, clone, expand_dims, flatten, permute, reshape, squeeze, swapaxes,
    swapdims, t, transpose, unsqueeze,
)
from engine.ops.join import (
    cat, chunk, concat, concatenate, flip, narrow, pad, repeat_interleave, split, stack,
    tensor_split, tile,
)
from engine.ops.select import argsort, masked_fill, median, sort, topk, tril, triu
from engine.ops.indexing import gather, getitem, index_add, scatter_add
from engine.ops.linalg import linear, matmul, norm
from engine.ops.softmax import log_softmax, softmax
from engine.ops.norm import batch_norm, layer_norm
from engine.ops.loss import binary_cross_entropy, cross_entropy
from engine.ops.attention import scaled_dot_product_attention
from engine.ops.conv import conv2d
from engine.ops.pool import avg_pool2d, max_pool2d
from engine.ops.embedding import embedding
from engine.kernels import fused_enabled, use_fused
from engine.threads import get_num_threads, set_num_threads
from engine.gradcheck import GradcheckError, gradcheck, gradgradcheck
from engine.serialization import CheckpointError, load, save
from engine.graph_view import draw_graph
from engine import cuda, return_types

# PyTorch's dtype names that shadow Python's builtins: engine.float, engine.int, ... (not
# in __all__, so that ``from engine import *`` leaves the builtins alone)
float = float32
int = int32
bool = bool_

# ``torch.nn``, ``torch.optim``, ``torch.utils.data``: where a program written as
# ``import engine as torch`` looks for them. The engine never imports these packages (they
# import the engine), so they are imported on first access.
_PACKAGES = {"nn": "nn", "optim": "optim", "utils": "engine.utils"}


def __getattr__(name: str):
    if name in _PACKAGES:
        import importlib

        module = importlib.import_module(_PACKAGES[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


__all__ = [
    "Tensor", "Size", "Function", "backward", "grad", "no_grad", "enable_grad",
    "set_grad_enabled", "is_grad_enabled", "detect_anomaly", "cuda_is_available", "device",
    "synchronize", "get_default_dtype", "set_default_dtype", "promote_types", "result_type",
    "float16", "half", "float32", "float64", "double", "uint8", "int8", "int16", "short",
    "int32", "int64", "long", "bool_",
    "manual_seed", "default_generator", "initial_seed", "get_rng_state", "set_rng_state",
    "Generator",
    "tensor", "from_numpy", "zeros", "ones", "empty", "full", "zeros_like", "ones_like",
    "empty_like", "full_like", "rand_like", "randn_like", "randint_like", "arange",
    "linspace", "eye", "rand", "randn", "randint", "randperm", "multinomial",
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs", "sin", "cos",
    "maximum", "minimum", "clamp", "clip", "tanh", "sigmoid", "relu", "leaky_relu", "gelu",
    "softplus", "erf",
    "eq", "ne", "lt", "le", "gt", "ge", "equal", "not_equal", "less", "less_equal",
    "greater", "greater_equal", "logical_and", "logical_or", "logical_not", "isfinite",
    "isnan", "sign", "where", "one_hot",
    "sum", "mean", "var", "std", "max", "min", "amax", "amin", "logsumexp", "argmax",
    "argmin", "cumsum", "all", "any", "norm",
    "reshape", "transpose", "permute", "swapaxes", "swapdims", "t", "broadcast_to",
    "squeeze", "unsqueeze", "expand_dims", "flatten", "clone", "cat", "concat",
    "concatenate", "stack", "split", "chunk", "tensor_split", "narrow", "pad", "tile",
    "repeat_interleave", "flip", "tril", "triu", "masked_fill", "sort", "argsort", "topk",
    "median", "gather", "return_types",
    "getitem", "index_add", "scatter_add", "matmul", "softmax", "log_softmax",
    "linear", "conv2d", "max_pool2d", "avg_pool2d", "layer_norm", "batch_norm", "embedding",
    "cross_entropy", "binary_cross_entropy", "scaled_dot_product_attention",
    "use_fused", "fused_enabled", "set_num_threads", "get_num_threads",
    "gradcheck", "gradgradcheck", "GradcheckError", "save", "load", "CheckpointError",
    "draw_graph", "cuda",
]
