"""The declarative op table: every differentiable op with its NumPy reference and the
inputs Hypothesis draws for it. ``test_ops.py`` runs each entry through the same checks.

An entry's ``case(data)`` draws ``(args, kwargs)``: float arrays in ``args`` become Tensors
that require grad, other arrays become plain Tensors, scalars stay scalars; ``kwargs`` go
unchanged to both the op and the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from hypothesis import strategies as st

import engine
from engine import testing as et
from op_cases import (
    KINK, basic_index_case, binary, bool_mask_case, broadcast_to_case,
    cat_case, chunk_case, clamp_tensors_case, clip_case, cumsum_case, expand_case,
    flatten_case, gather_case, int_array_index_case, lattice, masked_fill_case,
    matmul_case, narrow_case, norm_case, numpy_reduction, pad_case, permute_case,
    pow_scalar_case, reduction, repeat_case, repeat_interleave_case, reshape_case,
    rpow_case, softmax_case, sort_case, split_case, squeeze_case, stack_case,
    tensor_split_case, transpose_case, tril_case, unary, unsqueeze_case, where_case,
)
import op_references as ref


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
    Op("gelu", engine.gelu, ref.gelu, unary()),
    Op("gelu_tanh", lambda x: engine.gelu(x, approximate="tanh"), ref.gelu_tanh, unary()),
    Op("softplus", engine.softplus, lambda x: np.log1p(np.exp(x)), unary(et.floats(-5, 5))),
    Op("erf", engine.erf, ref.erf, unary()),
    Op("clip", lambda x, lo, hi: engine.clip(x, lo, hi), ref.clip, clip_case),
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
    Op("median_dim", lambda x, dim, keepdim: x.median(dim, keepdim).values, ref.median,
       reduction(unique=True, int_dim=True)),
    Op("logsumexp", engine.logsumexp, numpy_reduction(ref.logsumexp), reduction()),
    Op("norm", engine.norm, ref.norm, norm_case, rtol32=1e-4, atol32=1e-5),
    Op("cumsum", engine.cumsum, lambda x, dim: np.cumsum(x, axis=dim), cumsum_case),
    Op("matmul", engine.matmul, np.matmul, matmul_case),
    Op("softmax", engine.softmax, ref.softmax, softmax_case),
    Op("log_softmax", engine.log_softmax, lambda x, dim: np.log(ref.softmax(x, dim)),
       softmax_case),
    Op("reshape", engine.reshape, np.reshape, reshape_case),
    Op("permute", engine.permute, lambda x, dims: np.transpose(x, dims), permute_case),
    Op("transpose", engine.transpose, lambda x, dim0, dim1: np.swapaxes(x, dim0, dim1),
       transpose_case),
    Op("broadcast_to", engine.broadcast_to, lambda x, size: np.broadcast_to(x, size),
       broadcast_to_case),
    Op("expand", lambda x, sizes: x.expand(*sizes), ref.expand, expand_case),
    Op("repeat", lambda x, sizes: x.repeat(*sizes), lambda x, sizes: np.tile(x, sizes),
       repeat_case),
    Op("clone", engine.clone, np.copy, unary()),
    Op("flip", lambda x, dim: engine.flip(x, dim), lambda x, dim: np.flip(x, dim), cumsum_case),
    Op("squeeze", engine.squeeze, ref.squeeze, squeeze_case),
    Op("unsqueeze", engine.unsqueeze, lambda x, dim: np.expand_dims(x, dim), unsqueeze_case),
    Op("flatten", engine.flatten, ref.flatten, flatten_case),
    Op("getitem_basic", lambda x, index: x[index], lambda x, index: x[index], basic_index_case),
    Op("getitem_int_arrays", lambda x, index: x[index], lambda x, index: x[index],
       int_array_index_case),
    Op("getitem_bool_mask", lambda x, index: x[index], lambda x, index: x[index],
       bool_mask_case),
    Op("cat", lambda *xs, dim: engine.cat(xs, dim), lambda *xs, dim: np.concatenate(xs, dim),
       cat_case),
    Op("stack", lambda *xs, dim: engine.stack(xs, dim), lambda *xs, dim: np.stack(xs, dim),
       stack_case),
    Op("split", engine.split, ref.split, split_case),
    Op("chunk", engine.chunk, ref.chunk, chunk_case),
    Op("tensor_split", engine.tensor_split, lambda x, indices_or_sections, dim: tuple(
        np.array_split(x, indices_or_sections, dim)), tensor_split_case),
    Op("narrow", engine.narrow, ref.narrow, narrow_case),
    Op("masked_fill", lambda x, mask, value: x.masked_fill(mask, value),
       lambda x, mask, value: np.where(mask, value, x), masked_fill_case),
    Op("tril", engine.tril, lambda x, diagonal: np.tril(x, diagonal), tril_case),
    Op("triu", engine.triu, lambda x, diagonal: np.triu(x, diagonal), tril_case),
    Op("sort_values", lambda x, dim, descending: x.sort(dim, descending).values,
       ref.sort_values, sort_case),
    Op("topk_values", lambda x, k, dim, largest: x.topk(k, dim, largest).values, ref.topk,
       lambda data: sort_case(data, k=True)),
    Op("gather", lambda x, index, dim: engine.gather(x, dim, index),
       lambda x, index, dim: ref.gather(x, dim, index), gather_case),
    Op("repeat_interleave", engine.repeat_interleave,
       lambda x, repeats, dim: np.repeat(x, repeats, axis=dim), repeat_interleave_case),
    Op("where", engine.where, np.where, where_case),
    Op("pad", engine.pad, ref.pad, pad_case),
]
OPS_BY_NAME = {op.name: op for op in OPS}
