"""The inputs Hypothesis draws for the op table (:mod:`op_table`): each ``case(data)``
returns ``(args, kwargs)`` for one op, with PyTorch's argument names."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from engine import testing as et

KINK = 1e-2      # how far inputs stay from a kink (|x| at 0, clamp at its bounds)


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
