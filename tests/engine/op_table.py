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


def reduction(unique=False, ddof=False):
    def case(data):
        shape = data.draw(shape_st(min_dims=0, max_side=4))
        kw = {"axis": axis_for(data, len(shape)),
              "keepdims": data.draw(st.booleans())}
        if ddof:
            axes = range(len(shape)) if kw["axis"] is None else np.atleast_1d(kw["axis"])
            n = int(np.prod([shape[a] for a in axes])) if shape else 1
            kw["ddof"] = data.draw(st.sampled_from([0, 1] if n > 1 else [0]))
        if unique:   # distinct by far more than the finite-difference step: no ties
            return [arr(data, shape, elements=lattice(0.01), unique=True)], kw
        return [arr(data, shape)], kw
    return case


def softmax_case(data):
    shape = data.draw(shape_st(min_dims=1, max_side=5))
    return [arr(data, shape)], {"axis": data.draw(st.integers(-len(shape), len(shape) - 1))}


def reshape_case(data):
    shape = data.draw(shape_st(min_side=1))
    size = int(np.prod(shape))
    new = data.draw(st.sampled_from([(-1,), tuple(reversed(shape)), (1,) + tuple(shape),
                                     (size, 1)]))
    return [arr(data, shape)], {"shape": new}


def transpose_case(data):
    shape = data.draw(shape_st(min_dims=1))
    axes = data.draw(st.one_of(st.none(), st.permutations(range(len(shape))).map(tuple)))
    return [arr(data, shape)], {"axes": axes}


def swapaxes_case(data):
    shape = data.draw(shape_st(min_dims=1))
    n = len(shape)
    return [arr(data, shape)], {"axis1": data.draw(st.integers(-n, n - 1)),
                                "axis2": data.draw(st.integers(-n, n - 1))}


def broadcast_to_case(data):
    target = data.draw(shape_st(min_dims=1))
    drop = data.draw(st.integers(0, len(target)))
    shape = tuple(1 if data.draw(st.booleans()) else n for n in target[drop:])
    return [arr(data, shape)], {"shape": target}


def squeeze_case(data):
    shape = data.draw(shape_st(min_dims=1, min_side=1, max_side=3))
    ones = [i for i, n in enumerate(shape) if n == 1]
    axis = None
    if ones and data.draw(st.booleans()):
        axis = tuple(data.draw(st.lists(st.sampled_from(ones), min_size=1, unique=True)))
    return [arr(data, shape)], {"axis": axis}


def unsqueeze_case(data):
    shape = data.draw(shape_st())
    return [arr(data, shape)], {"axis": data.draw(st.integers(-len(shape) - 1, len(shape)))}


def flatten_case(data):
    shape = data.draw(shape_st(min_dims=1))
    n = len(shape)
    start = data.draw(st.integers(0, n - 1))
    return [arr(data, shape)], {"start_axis": start, "end_axis": data.draw(
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


def concatenate_case(data):
    shape = list(data.draw(shape_st(min_dims=1)))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    xs = []
    for _ in range(data.draw(st.integers(1, 3))):
        shape[axis] = data.draw(st.integers(0, 3))
        xs.append(arr(data, tuple(shape)))
    return xs, {"axis": axis}


def stack_case(data):
    shape = data.draw(shape_st())
    n = data.draw(st.integers(1, 3))
    return ([arr(data, shape) for _ in range(n)],
            {"axis": data.draw(st.integers(-len(shape) - 1, len(shape)))})


def split_case(data):
    shape = list(data.draw(shape_st(min_dims=1)))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    sections = data.draw(st.integers(1, 3))
    if data.draw(st.booleans()):
        shape[axis] = sections * data.draw(st.integers(1, 2))
        how = sections
    else:
        how = sorted(data.draw(st.lists(st.integers(0, shape[axis]), max_size=3)))
    return [arr(data, tuple(shape))], {"indices_or_sections": how, "axis": axis}


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
def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


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


def _squeeze(x, axis=None):
    return np.squeeze(x, axis=axis)


def _flatten(x, start_axis, end_axis):
    s = x.shape
    return x.reshape(s[:start_axis] + (-1,) + s[end_axis + 1:])


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
    Op("sum", engine.sum, np.sum, reduction()),
    Op("mean", engine.mean, np.mean, reduction()),
    Op("var", engine.var, np.var, reduction(ddof=True), rtol32=1e-4, atol32=1e-5),
    Op("max", engine.max, np.max, reduction(unique=True)),
    Op("min", engine.min, np.min, reduction(unique=True)),
    Op("logsumexp", engine.logsumexp, _logsumexp, reduction()),
    Op("matmul", engine.matmul, np.matmul, matmul_case),
    Op("softmax", engine.softmax, _softmax, softmax_case),
    Op("log_softmax", engine.log_softmax, lambda x, axis: np.log(_softmax(x, axis)),
       softmax_case),
    Op("reshape", engine.reshape, np.reshape, reshape_case),
    Op("transpose", engine.transpose, np.transpose, transpose_case),
    Op("swapaxes", engine.swapaxes, np.swapaxes, swapaxes_case),
    Op("broadcast_to", engine.broadcast_to, np.broadcast_to, broadcast_to_case),
    Op("squeeze", engine.squeeze, _squeeze, squeeze_case),
    Op("unsqueeze", engine.unsqueeze, np.expand_dims, unsqueeze_case),
    Op("flatten", engine.flatten, _flatten, flatten_case),
    Op("getitem_basic", lambda x, index: x[index], lambda x, index: x[index], basic_index_case),
    Op("getitem_int_arrays", lambda x, index: x[index], lambda x, index: x[index],
       int_array_index_case),
    Op("getitem_bool_mask", lambda x, index: x[index], lambda x, index: x[index],
       bool_mask_case),
    Op("concatenate", lambda *xs, axis: engine.concatenate(xs, axis),
       lambda *xs, axis: np.concatenate(xs, axis), concatenate_case),
    Op("stack", lambda *xs, axis: engine.stack(xs, axis), lambda *xs, axis: np.stack(xs, axis),
       stack_case),
    Op("split", engine.split, lambda x, indices_or_sections, axis: tuple(
        np.split(x, indices_or_sections, axis)), split_case),
    Op("where", engine.where, np.where, where_case),
    Op("pad", engine.pad, _pad, pad_case),
]
OPS_BY_NAME = {op.name: op for op in OPS}
