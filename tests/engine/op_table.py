"""The declarative op table: every differentiable op with its NumPy reference and the
inputs Hypothesis draws for it. ``test_ops.py`` runs each entry through the same checks.

An entry's ``case(data)`` draws ``(args, kwargs)``: float arrays in ``args`` become Tensors
that require grad, other arrays become plain Tensors, scalars stay scalars; ``kwargs`` go
unchanged to both the op and the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import engine
from engine import testing as et

_erf = np.vectorize(math.erf, otypes=[np.float64])


@dataclass
class Op:
    name: str
    fn: Callable
    ref: Callable
    case: Callable
    rtol32: float = 2e-5          # float32 vs float64 reference
    atol32: float = 2e-6
    grad_atol: float = 1e-5
    tags: set = field(default_factory=set)


def shape_st(min_dims=0, max_dims=3, min_side=1, max_side=4):
    return et.shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                     max_side=max_side)


def arr(data, shape, elements=None, unique=False):
    if unique:
        elements = et.floats() if elements is None else elements
        a = data.draw(hnp.arrays(np.float64, shape, elements=elements, unique=True))
        return et.strided_copy(a) if data.draw(st.booleans()) and a.size > 1 else a
    return data.draw(et.arrays(shape=shape, elements=elements))


def lattice(offset):
    """Values k/10 + offset: two lattices with different offsets never tie (max, min)."""
    return st.integers(-30, 30).map(lambda k: k / 10 + offset)


# ----------------------------------------------------------------------------- cases
def unary(elements=None, min_side=0):
    def case(data):
        return [arr(data, data.draw(shape_st(min_side=min_side)), elements)], {}
    return case


def binary(ea=None, eb=None):
    def case(data):
        sa, sb = data.draw(et.broadcastable_shapes())
        if data.draw(st.booleans()):          # broadcasting both ways round
            return [arr(data, sa, ea), arr(data, sb, eb)], {}
        return [arr(data, sb, ea), arr(data, sa, eb)], {}
    return case


def axis_for(data, ndim, allow_tuple=True):
    choice = data.draw(st.sampled_from(["none", "int", "tuple"] if allow_tuple and ndim >= 2
                                       else ["none", "int"] if ndim else ["none"]))
    if choice == "none":
        return None
    if choice == "int":
        return data.draw(st.integers(-ndim, ndim - 1))
    axes = data.draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                              unique=True))
    return tuple(axes)


def reduction(unique=False, correction=False, int_dim=False, elements=None):
    def case(data):
        shape = data.draw(shape_st(min_dims=1 if int_dim else 0, max_side=4))
        dim = data.draw(st.integers(-len(shape), len(shape) - 1)) if int_dim else \
            axis_for(data, len(shape))
        kw = {"dim": dim, "keepdim": data.draw(st.booleans())}
        if correction:
            axes = range(len(shape)) if kw["dim"] is None else np.atleast_1d(kw["dim"])
            n = int(np.prod([shape[a] for a in axes])) if shape else 1
            kw["correction"] = data.draw(st.sampled_from([0, 1] if n > 1 else [0]))
        if unique:   # distinct by far more than the finite-difference step: no ties
            return [arr(data, shape, elements=lattice(0.01), unique=True)], kw
        return [arr(data, shape, elements)], kw
    return case


def numpy_reduction(fn):
    """A NumPy reduction called with PyTorch's argument names."""
    def ref(x, dim=None, keepdim=False, correction=None):
        kw = {} if correction is None else {"ddof": correction}
        return fn(x, axis=dim, keepdims=keepdim, **kw)
    return ref


def softmax_case(data):
    shape = data.draw(shape_st(min_dims=1, max_side=5))
    return [arr(data, shape)], {"dim": data.draw(st.integers(-len(shape), len(shape) - 1))}


def reshape_case(data):
    shape = data.draw(shape_st(min_side=1))
    size = int(np.prod(shape))
    new = data.draw(st.sampled_from([(-1,), tuple(reversed(shape)), (1,) + tuple(shape),
                                     (size, 1)]))
    return [arr(data, shape)], {"shape": new}


def permute_case(data):
    shape = data.draw(shape_st(min_dims=1))
    return [arr(data, shape)], {"dims": data.draw(st.permutations(range(len(shape))).map(
        tuple))}


def transpose_case(data):
    shape = data.draw(shape_st(min_dims=1))
    n = len(shape)
    return [arr(data, shape)], {"dim0": data.draw(st.integers(-n, n - 1)),
                                "dim1": data.draw(st.integers(-n, n - 1))}


def broadcast_to_case(data):
    target = data.draw(shape_st(min_dims=1))
    drop = data.draw(st.integers(0, len(target)))
    shape = tuple(1 if data.draw(st.booleans()) else n for n in target[drop:])
    return [arr(data, shape)], {"size": target}


def squeeze_case(data):
    """Any axes, those of size 1 dropped and the others kept (PyTorch's squeeze)."""
    shape = data.draw(shape_st(min_dims=1, min_side=1, max_side=3))
    dim = None
    if data.draw(st.booleans()):
        dim = tuple(data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1,
                                       unique=True)))
    return [arr(data, shape)], {"dim": dim}


def unsqueeze_case(data):
    shape = data.draw(shape_st())
    return [arr(data, shape)], {"dim": data.draw(st.integers(-len(shape) - 1, len(shape)))}


def flatten_case(data):
    shape = data.draw(shape_st(min_dims=1))
    n = len(shape)
    start = data.draw(st.integers(0, n - 1))
    return [arr(data, shape)], {"start_dim": start, "end_dim": data.draw(
        st.integers(start, n - 1))}


def basic_index_case(data):
    shape = data.draw(shape_st(min_dims=1, max_side=5))
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    return [arr(data, shape)], {"index": index}


def int_array_index_case(data):
    """x[idx], x[idx, :], x[rows, cols] and x[:, idx]: repeats and negatives included."""
    shape = data.draw(shape_st(min_dims=2, max_dims=3, max_side=4))
    kind = data.draw(st.sampled_from(["rows", "rows_slice", "pairs", "inner"]))
    if kind == "rows":
        index = data.draw(et.index_arrays(shape[0]))
    elif kind == "rows_slice":
        index = (data.draw(et.index_arrays(shape[0])), slice(None))
    elif kind == "pairs":
        n = data.draw(st.integers(0, 6))
        index = (data.draw(et.index_arrays(shape[0], shape=(n,))),
                 data.draw(et.index_arrays(shape[1], shape=(n,))))
    else:
        index = (slice(None), data.draw(et.index_arrays(shape[1])))
    return [arr(data, shape)], {"index": index}


def bool_mask_case(data):
    shape = data.draw(shape_st(min_dims=1, max_side=4))
    lead = data.draw(st.integers(1, len(shape)))
    mask = data.draw(hnp.arrays(bool, shape[:lead]))
    return [arr(data, shape)], {"index": mask}


def cat_case(data):
    shape = list(data.draw(shape_st(min_dims=1)))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    xs = []
    for _ in range(data.draw(st.integers(1, 3))):
        shape[dim] = data.draw(st.integers(0, 3))
        xs.append(arr(data, tuple(shape)))
    return xs, {"dim": dim}


def stack_case(data):
    shape = data.draw(shape_st())
    n = data.draw(st.integers(1, 3))
    return ([arr(data, shape) for _ in range(n)],
            {"dim": data.draw(st.integers(-len(shape) - 1, len(shape)))})


def _dim_case(data, min_side=0):
    shape = data.draw(shape_st(min_dims=1, min_side=min_side))
    return shape, data.draw(st.integers(-len(shape), len(shape) - 1))


def tensor_split_case(data):
    shape, dim = _dim_case(data)
    if data.draw(st.booleans()):
        how = data.draw(st.integers(1, 4))
    else:
        how = sorted(data.draw(st.lists(st.integers(0, shape[dim]), max_size=3)))
    return [arr(data, shape)], {"indices_or_sections": how, "dim": dim}


def split_case(data):
    """PyTorch's split: a piece length, or lengths that add up to the axis."""
    shape, dim = _dim_case(data, min_side=1)
    n = shape[dim]
    if data.draw(st.booleans()):
        how = data.draw(st.integers(1, n + 1))
    else:
        cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
        how = [b - a for a, b in zip([0] + cuts, cuts + [n])]
    return [arr(data, shape)], {"split_size_or_sections": how, "dim": dim}


def chunk_case(data):
    shape, dim = _dim_case(data)
    return [arr(data, shape)], {"chunks": data.draw(st.integers(1, 5)), "dim": dim}


def narrow_case(data):
    shape, dim = _dim_case(data)
    n = shape[dim]
    start = data.draw(st.integers(-n, n)) if n else 0
    length = data.draw(st.integers(0, n - (start % n if n and start < n else n)))
    return [arr(data, shape)], {"dim": dim, "start": start, "length": length}


def masked_fill_case(data):
    shape = data.draw(shape_st(min_dims=1))
    mask = data.draw(hnp.arrays(bool, shape[data.draw(st.integers(0, len(shape))):]))
    return [arr(data, shape), mask], {"value": data.draw(et.floats())}


def tril_case(data):
    shape = data.draw(shape_st(min_dims=2))
    return [arr(data, shape)], {"diagonal": data.draw(st.integers(-2, 2))}


def repeat_case(data):
    shape = data.draw(shape_st(min_dims=1, max_dims=2))
    extra = data.draw(st.integers(0, 2))
    sizes = tuple(data.draw(st.integers(0, 3)) for _ in range(len(shape) + extra))
    return [arr(data, shape)], {"sizes": sizes}


def expand_case(data):
    shape = data.draw(shape_st(min_dims=1, max_dims=3))
    lead = tuple(data.draw(st.integers(1, 3)) for _ in range(data.draw(st.integers(0, 2))))
    sizes = lead + tuple(data.draw(st.sampled_from([-1, n, 3] if n == 1 else [-1, n]))
                         for n in shape)
    return [arr(data, shape)], {"sizes": sizes}


def sort_case(data, k=False):
    shape = data.draw(shape_st(min_dims=1, min_side=1))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    kw = {"dim": dim, "descending": data.draw(st.booleans())}
    if k:
        kw = {"dim": dim, "largest": kw["descending"],
              "k": data.draw(st.integers(0, shape[dim]))}
    return [arr(data, shape, elements=lattice(0.01), unique=True)], kw


def norm_case(data):
    shape = data.draw(shape_st(max_side=4))
    p = data.draw(st.sampled_from([2, "fro", 1, 3, float("inf")]))
    elements = lattice(0.01) if p == float("inf") else et.away_from(et.floats(), margin=KINK)
    dim = axis_for(data, len(shape))
    if p == "fro" and isinstance(dim, tuple) and len(dim) > 2:
        dim = dim[:2]                       # the Frobenius norm takes one or two dims
    return [arr(data, shape, elements, unique=p == float("inf"))], {
        "p": p, "dim": dim, "keepdim": data.draw(st.booleans())}


def cumsum_case(data):
    shape, dim = _dim_case(data)
    return [arr(data, shape)], {"dim": dim}


def gather_case(data):
    shape, dim = _dim_case(data, min_side=1)
    index_shape = tuple(data.draw(st.integers(0 if a == dim else 1, n if a != dim else 4))
                        for a, n in enumerate(shape))
    index = data.draw(hnp.arrays(np.int64, index_shape, elements=st.integers(
        0, shape[dim] - 1)))
    return [arr(data, shape), index], {"dim": dim}


def repeat_interleave_case(data):
    shape, dim = _dim_case(data)
    if data.draw(st.booleans()):
        repeats = data.draw(st.integers(0, 3))
    else:
        repeats = np.array(data.draw(st.lists(st.integers(0, 3), min_size=shape[dim],
                                              max_size=shape[dim])), dtype=np.int64)
    return [arr(data, shape)], {"repeats": repeats, "dim": dim}


def clamp_tensors_case(data):
    sa, sb = data.draw(et.broadcastable_shapes(max_dims=2))
    lo = arr(data, sb, lattice(0.01))
    return [arr(data, sa, lattice(0.03)), lo, lo + 1.0], {}


def where_case(data):
    sa, sb = data.draw(et.broadcastable_shapes(max_dims=2))
    sc = data.draw(st.sampled_from([sa, sb, ()]))
    return [data.draw(hnp.arrays(bool, sc)), arr(data, sa), arr(data, sb)], {}


def pad_case(data):
    shape = data.draw(shape_st(min_dims=1, max_dims=3))
    widths = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in shape)
    return [arr(data, shape)], {"pad_width": widths, "value": data.draw(et.floats())}


def matmul_case(data):
    n, m, p = (data.draw(st.integers(1, 4)) for _ in range(3))
    kind = data.draw(st.sampled_from(["vv", "vm", "mv", "mm", "batched", "broadcast"]))
    shapes = {
        "vv": ((n,), (n,)),
        "vm": ((n,), (2, n, m)),
        "mv": ((2, n, m), (m,)),
        "mm": ((n, m), (m, p)),
        "batched": ((3, n, m), (3, m, p)),
        "broadcast": ((2, 1, n, m), (3, m, p)),
    }[kind]
    return [arr(data, shapes[0]), arr(data, shapes[1])], {}


def pow_scalar_case(data):
    shape = data.draw(shape_st())
    exponent = data.draw(st.sampled_from([2, 3, 0.5, 2.5, -1.0, 0]))
    elements = et.floats(0.2, 3.0) if exponent in (0.5, 2.5, -1.0) else None
    return [arr(data, shape, elements)], {"exponent": exponent}


def rpow_case(data):
    return [arr(data, data.draw(shape_st()))], {"base": data.draw(st.sampled_from([2.0, 0.5,
                                                                                    3]))}


def clip_case(data):
    elements = et.away_from(et.floats(-2, 2), points=(-0.5, 0.5), margin=1e-2)
    return [arr(data, data.draw(shape_st()), elements)], {
        "lo": data.draw(st.sampled_from([-0.5, None])), "hi": 0.5}


# ----------------------------------------------------------------------------- references
def _softmax(x, dim):
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def _logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    y = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if keepdims:
        return y
    return y.reshape(()) if axis is None else np.squeeze(y, axis=axis)


def _gelu(x):
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _squeeze(x, dim=None):
    dims = range(x.ndim) if dim is None else dim
    return x.reshape(tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1)))


def _flatten(x, start_dim, end_dim):
    s = x.shape
    return x.reshape(s[:start_dim] + (-1,) + s[end_dim + 1:])


def _split(x, split_size_or_sections, dim):
    n = x.shape[dim]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = split_size_or_sections
    return tuple(np.split(x, np.cumsum(sizes)[:-1].astype(int), axis=dim))


def _chunk(x, chunks, dim):
    n = x.shape[dim]
    if n == 0:
        return tuple(np.split(x, [0] * (chunks - 1), axis=dim))
    return _split(x, -(-n // chunks), dim)


def _narrow(x, dim, start, length):
    start = start + x.shape[dim] if start < 0 else start
    return np.take(x, np.arange(start, start + length), axis=dim)


def _expand(x, sizes):
    lead = len(sizes) - x.ndim
    shape = sizes[:lead] + tuple(n if s == -1 else s for s, n in zip(sizes[lead:], x.shape))
    return np.broadcast_to(x, shape)


def _sorted(x, dim, descending):
    s = np.sort(x, axis=dim)
    return np.flip(s, axis=dim) if descending else s


def _topk(x, k, dim, largest):
    return np.take(_sorted(x, dim, largest), np.arange(k), axis=dim)


def _median(x, dim, keepdim):
    n = x.shape[dim]
    return np.take(np.sort(x, axis=dim), [(n - 1) // 2] if keepdim else (n - 1) // 2,
                   axis=dim)


def _norm(x, p, dim, keepdim):
    p = 2 if p == "fro" else p
    a = np.abs(x)
    if p == float("inf"):
        return a.max(axis=dim, keepdims=keepdim) if x.size else a.sum(axis=dim,
                                                                       keepdims=keepdim)
    return (a ** p).sum(axis=dim, keepdims=keepdim) ** (1 / p)


def _gather(x, dim, index):
    dim %= x.ndim
    return np.take_along_axis(x[tuple(slice(0, m) if a != dim else slice(None)
                                      for a, m in enumerate(index.shape))], index, axis=dim)


def _pad(x, pad_width, value):
    return np.pad(x, pad_width, constant_values=value)


def _clip(x, lo, hi):
    return np.clip(x, lo, hi)


KINK = 1e-2
OPS = [
    Op("neg", engine.neg, np.negative, unary()),
    Op("exp", engine.exp, np.exp, unary()),
    Op("log", engine.log, np.log, unary(et.floats(0.1, 5))),
    Op("sqrt", engine.sqrt, np.sqrt, unary(et.floats(0.1, 5))),
    Op("abs", engine.abs, np.abs, unary(et.away_from(et.floats(), margin=KINK))),
    Op("tanh", engine.tanh, np.tanh, unary()),
    Op("sigmoid", engine.sigmoid, lambda x: 1 / (1 + np.exp(-x)), unary()),
    Op("relu", engine.relu, lambda x: np.maximum(x, 0),
       unary(et.away_from(et.floats(), margin=KINK))),
    Op("leaky_relu", lambda x: engine.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x),
       unary(et.away_from(et.floats(), margin=KINK))),
    Op("gelu", engine.gelu, _gelu, unary()),
    Op("gelu_tanh", lambda x: engine.gelu(x, approximate="tanh"), _gelu_tanh, unary()),
    Op("softplus", engine.softplus, lambda x: np.log1p(np.exp(x)), unary(et.floats(-5, 5))),
    Op("erf", engine.erf, _erf, unary()),
    Op("clip", lambda x, lo, hi: engine.clip(x, lo, hi), _clip, clip_case),
    Op("clamp_tensors", engine.clamp, np.clip, clamp_tensors_case),
    Op("pow_scalar", lambda x, exponent: x ** exponent, lambda x, exponent: x ** exponent,
       pow_scalar_case, rtol32=1e-4),
    Op("rpow", lambda x, base: base ** x, lambda x, base: base ** x, rpow_case),
    Op("add", engine.add, np.add, binary()),
    Op("sub", engine.sub, np.subtract, binary()),
    Op("mul", engine.mul, np.multiply, binary()),
    Op("div", engine.div, np.divide,
       binary(eb=st.tuples(et.floats(0.3, 3), st.booleans()).map(lambda t: t[0] * (
           1 if t[1] else -1)))),
    Op("pow", engine.pow, np.power, binary(ea=et.floats(0.3, 3), eb=et.floats(-2, 2)),
       rtol32=1e-4),
    Op("maximum", engine.maximum, np.maximum, binary(lattice(0.03), lattice(0.07))),
    Op("minimum", engine.minimum, np.minimum, binary(lattice(0.03), lattice(0.07))),
    Op("sin", engine.sin, np.sin, unary()),
    Op("cos", engine.cos, np.cos, unary()),
    Op("sum", engine.sum, numpy_reduction(np.sum), reduction()),
    Op("mean", engine.mean, numpy_reduction(np.mean), reduction()),
    Op("var", engine.var, numpy_reduction(np.var), reduction(correction=True), rtol32=1e-4,
       atol32=1e-5),
    Op("std", engine.std, numpy_reduction(np.std), reduction(
        correction=True, elements=lattice(0.01)), rtol32=1e-4, atol32=1e-5),
    Op("amax", engine.amax, numpy_reduction(np.max), reduction(unique=True)),
    Op("amin", engine.amin, numpy_reduction(np.min), reduction(unique=True)),
    Op("max_dim", lambda x, dim, keepdim: engine.max(x, dim, keepdim).values,
       numpy_reduction(np.max), reduction(unique=True, int_dim=True)),
    Op("min_dim", lambda x, dim, keepdim: x.min(dim, keepdim).values,
       numpy_reduction(np.min), reduction(unique=True, int_dim=True)),
    Op("median_dim", lambda x, dim, keepdim: x.median(dim, keepdim).values, _median,
       reduction(unique=True, int_dim=True)),
    Op("logsumexp", engine.logsumexp, numpy_reduction(_logsumexp), reduction()),
    Op("norm", engine.norm, _norm, norm_case, rtol32=1e-4, atol32=1e-5),
    Op("cumsum", engine.cumsum, lambda x, dim: np.cumsum(x, axis=dim), cumsum_case),
    Op("matmul", engine.matmul, np.matmul, matmul_case),
    Op("softmax", engine.softmax, _softmax, softmax_case),
    Op("log_softmax", engine.log_softmax, lambda x, dim: np.log(_softmax(x, dim)),
       softmax_case),
    Op("reshape", engine.reshape, np.reshape, reshape_case),
    Op("permute", engine.permute, lambda x, dims: np.transpose(x, dims), permute_case),
    Op("transpose", engine.transpose, lambda x, dim0, dim1: np.swapaxes(x, dim0, dim1),
       transpose_case),
    Op("broadcast_to", engine.broadcast_to, lambda x, size: np.broadcast_to(x, size),
       broadcast_to_case),
    Op("expand", lambda x, sizes: x.expand(*sizes), _expand, expand_case),
    Op("repeat", lambda x, sizes: x.repeat(*sizes), lambda x, sizes: np.tile(x, sizes),
       repeat_case),
    Op("clone", engine.clone, np.copy, unary()),
    Op("flip", lambda x, dim: engine.flip(x, dim), lambda x, dim: np.flip(x, dim), cumsum_case),
    Op("squeeze", engine.squeeze, _squeeze, squeeze_case),
    Op("unsqueeze", engine.unsqueeze, lambda x, dim: np.expand_dims(x, dim), unsqueeze_case),
    Op("flatten", engine.flatten, _flatten, flatten_case),
    Op("getitem_basic", lambda x, index: x[index], lambda x, index: x[index], basic_index_case),
    Op("getitem_int_arrays", lambda x, index: x[index], lambda x, index: x[index],
       int_array_index_case),
    Op("getitem_bool_mask", lambda x, index: x[index], lambda x, index: x[index],
       bool_mask_case),
    Op("cat", lambda *xs, dim: engine.cat(xs, dim), lambda *xs, dim: np.concatenate(xs, dim),
       cat_case),
    Op("stack", lambda *xs, dim: engine.stack(xs, dim), lambda *xs, dim: np.stack(xs, dim),
       stack_case),
    Op("split", engine.split, _split, split_case),
    Op("chunk", engine.chunk, _chunk, chunk_case),
    Op("tensor_split", engine.tensor_split, lambda x, indices_or_sections, dim: tuple(
        np.array_split(x, indices_or_sections, dim)), tensor_split_case),
    Op("narrow", engine.narrow, _narrow, narrow_case),
    Op("masked_fill", lambda x, mask, value: x.masked_fill(mask, value),
       lambda x, mask, value: np.where(mask, value, x), masked_fill_case),
    Op("tril", engine.tril, lambda x, diagonal: np.tril(x, diagonal), tril_case),
    Op("triu", engine.triu, lambda x, diagonal: np.triu(x, diagonal), tril_case),
    Op("sort_values", lambda x, dim, descending: x.sort(dim, descending).values, _sorted,
       sort_case),
    Op("topk_values", lambda x, k, dim, largest: x.topk(k, dim, largest).values, _topk,
       lambda data: sort_case(data, k=True)),
    Op("gather", lambda x, index, dim: engine.gather(x, dim, index),
       lambda x, index, dim: _gather(x, dim, index), gather_case),
    Op("repeat_interleave", engine.repeat_interleave,
       lambda x, repeats, dim: np.repeat(x, repeats, axis=dim), repeat_interleave_case),
    Op("where", engine.where, np.where, where_case),
    Op("pad", engine.pad, _pad, pad_case),
]
OPS_BY_NAME = {op.name: op for op in OPS}
