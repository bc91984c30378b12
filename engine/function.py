"""``Function``: the unit of differentiation, and the switches that govern recording.

An op is a subclass with two static methods that work on raw arrays (NumPy or CuPy)::

    class Exp(Function):
        '''y = exp(x);  gx = gy * y'''

        @staticmethod
        def forward(ctx, x):
            y = ctx.xp.exp(x)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, gy):
            (y,) = ctx.saved_tensors
            return gy * y

What backward needs goes through ``ctx.save_for_backward``; an array that is no function
of the inputs (a dropout mask, class targets, index arrays) may be an attribute of ``ctx``
named in the class's ``ctx_arrays``. Both are freed once backward used them.

``Exp.apply(t)`` unwraps the Tensors, runs ``forward``, wraps the result and, when grad
mode is on and some input requires grad, records the call as a graph node: the instance
(``ctx``) keeps a tuple ``edges`` of one edge per input, ``(node, index, shape, dtype)``,
naming where that input's gradient goes (output ``index`` of the node that produced the
input, or the leaf's :class:`AccumulateGrad`, index 0) and the shape and dtype it must
have; None for an input that needs no gradient (``needs_input_grad``, a tuple of bools,
says which, as in PyTorch). Nodes point only backward: an output owns its creator and never the
reverse, so a graph is freed by reference counting alone.

Each backward formula is written once. For first-order gradients it runs on raw arrays with
``ctx.xp`` the array module; under ``create_graph=True`` it runs on Tensors, with
``ctx.xp`` the Tensor namespace :data:`engine.ops.tensor_xp` and ``ctx.saved_tensors`` the
recorded Tensors, so that the backward is itself differentiated.

Whether a call is recorded, and whether its outputs are checked for NaN and inf, is up to
the per-thread switches of :mod:`engine.grad_mode` (``no_grad``, ``detect_anomaly``).
"""

from __future__ import annotations

import weakref

import numpy as np

from engine import backend, grad_mode, versions
from engine.grad_mode import _modes, check_forward_anomaly
from engine.tensor import Tensor

_RELEASED = "released"   # marker for saved arrays freed by a backward pass
_versioned = versions.table   # empty while no live memory was ever written in place
_writes = versions.writes


def _check_devices(op: str, arrays) -> object:
    """The array module shared by ``arrays``; raises naming both devices on a mix."""
    first = None
    for a in arrays:
        if isinstance(a, np.ndarray):
            dev = "cpu"
        elif backend.is_cuda_array(a):
            dev = backend.device_of(a)
        else:
            continue
        if first is None:
            first = dev
        elif dev != first:
            raise RuntimeError(
                f"{op}: expected all tensors on one device, got {first} and {dev}"
            )
    return np if first in (None, "cpu") else backend.cupy_module()


class AccumulateGrad:
    """The graph node at a leaf that requires grad (PyTorch's ``AccumulateGrad``).

    Every edge of the graph ends at a node; a leaf's gradient goes to its accumulator,
    which the backward walk runs last for that leaf, adding the summed gradient to
    ``leaf.grad``. The accumulator holds the leaf; the leaf caches only a weak reference to
    its accumulator, so all graphs through one leaf share one accumulator while any of
    them lives, and no reference cycle forms.
    """

    __slots__ = ("variable", "__weakref__")
    edges = ()
    n_outputs = 1

    def __init__(self, variable: Tensor) -> None:
        self.variable = variable


def grad_accumulator(leaf: Tensor) -> AccumulateGrad:
    """The accumulator of ``leaf``: the live one if some graph holds it, else a new one."""
    ref = getattr(leaf, "_accumulator", None)    # the slot is set on first use only
    acc = None if ref is None else ref()
    if acc is None:
        acc = AccumulateGrad(leaf)
        leaf._accumulator = weakref.ref(acc)
    return acc


def gradient_edge(t: Tensor) -> tuple:
    """``(node, index)``: where the gradient of ``t`` goes in the graph."""
    if t._node is None:
        return grad_accumulator(t), 0
    return t._node, t._index


def _holds_array(value) -> bool:
    """An array or a Tensor, or a tuple or list holding one (an index, say)."""
    if isinstance(value, (tuple, list)):
        return any(map(_holds_array, value))
    return isinstance(value, (np.ndarray, Tensor)) or backend.is_cuda_array(value)


def release_saved(node) -> None:
    """Free what forward kept for backward, once a backward without retain_graph used it:
    the saved values, and the arrays held by the attributes the class names in
    ``ctx_arrays`` (a dropout mask, class targets, index arrays).

    A graph lives as long as one of its outputs (a training loop that keeps every loss
    keeps every step's graph), so what it keeps after backward must not grow with the
    data. A node left with nothing of the kind (a slice for an index, say) can run
    backward again, as in PyTorch; another raises :func:`freed_graph_error`.
    """
    released = bool(node.saved)
    attributes = node.__dict__
    for name in node.ctx_arrays:
        if _holds_array(attributes.get(name)):
            del attributes[name]
            released = True
    if released:
        node.saved = _RELEASED


def freed_graph_error(node) -> RuntimeError:
    """The "backward twice" error, for a node whose saved arrays a backward freed."""
    return RuntimeError(
        f"{type(node).__name__}: trying to backward through the graph a second time, but "
        "its saved arrays were freed by the first backward; pass retain_graph=True to the "
        "first backward to keep them"
    )


_new_object = object.__new__
_make_tensor = Tensor._make
_ndarray = np.ndarray


class Function:
    """Base class of every differentiable op (see the module docstring)."""

    # Defaults, overwritten per instance only when needed (keeps apply cheap).
    xp = np               # the array module of the inputs (CuPy when set; the Tensor
                          # namespace while a backward builds a graph)
    n_outputs = 1
    out_meta = None       # (shape, dtype) per output, for ops with several outputs
    saved = ()
    saved_tags = None
    saved_at = None        # the write clock when saved (engine.versions); None: no live
                           # memory had been written then
    retained = None       # [(output index, weak reference)] of retain_grad() outputs
    _saved_view = None

    # Ops whose backward uses values that are not differentiable functions of the inputs
    # and outputs (fused kernels) set this; create_graph through them raises.
    once_differentiable = False

    # Names of attributes that forward sets on ctx to hold arrays for backward outside
    # save_for_backward (a dropout mask, class targets, index arrays): freed with the
    # saved values after backward (release_saved), so a kept output keeps none of them.
    ctx_arrays = ()

    @staticmethod
    def forward(ctx, *arrays, **params):
        raise NotImplementedError("a Function subclass must define forward(ctx, *arrays)")

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError("a Function subclass must define backward(ctx, *grads)")

    def save_for_backward(self, *values) -> None:
        """Keep arrays (or scalars) that backward needs; freed after backward runs (as are
        the attributes named in ``ctx_arrays``)."""
        self.saved = values

    def input_shape(self, i: int) -> tuple:
        """The shape of input ``i``, known for every input that needs a gradient: the one
        shape a backward sums a broadcast gradient back to (``sum_to(g, ctx.input_shape(i))``)."""
        return self.edges[i][2]

    @property
    def saved_tensors(self) -> tuple:
        """What forward saved: arrays, or Tensors when backward builds a graph."""
        if self._saved_view is not None:
            return self._saved_view
        if self.saved is _RELEASED:
            raise freed_graph_error(self)
        return self.saved

    @classmethod
    def apply(cls, *args, **params):
        """Run the op on Tensors (or scalars, arrays, None for an absent optional input);
        record a node when grad mode is on and some input requires grad."""
        ctx = _new_object(cls)
        grad_on = _modes.grad_enabled
        arrays = []
        edges = []
        needs = []
        record = False
        plain = True        # only NumPy arrays, Python scalars and None: ctx.xp is NumPy
        for a in args:
            if isinstance(a, Tensor):
                d = a.data
                arrays.append(d)
                if type(d) is not _ndarray:
                    plain = False
                if grad_on and a.requires_grad:
                    record = True
                    node = a._node
                    edges.append((node, a._index, d.shape, d.dtype) if node is not None
                                 else (grad_accumulator(a), 0, d.shape, d.dtype))
                    needs.append(True)
                    continue
            else:
                kind = type(a)
                if kind is float or kind is int or a is None or kind is _ndarray:
                    pass
                elif isinstance(a, np.generic):
                    a = a.item()              # NumPy scalars act like Python scalars
                elif not isinstance(a, (float, int)):
                    plain = False             # a CuPy array, a list, ...
                arrays.append(a)
            edges.append(None)
            needs.append(False)
        if not plain:
            ctx.xp = _check_devices(cls.__name__, arrays)
        if record:
            ctx.edges = tuple(edges)
            ctx.needs_input_grad = tuple(needs)
        if params:
            raw = cls.forward(ctx, *arrays, **params)
        elif len(arrays) == 2:    # direct calls: CPython's f(*arrays) costs ~60 ns more
            raw = cls.forward(ctx, arrays[0], arrays[1])
        elif len(arrays) == 1:
            raw = cls.forward(ctx, arrays[0])
        else:
            raw = cls.forward(ctx, *arrays)
        if type(raw) is _ndarray and not grad_mode.anomaly_threads and not (record and ctx.saved):
            # The common case, one NumPy output and nothing saved: what _wrap_outputs
            # does for it, with Tensor._make inlined (the call alone would cost ~4% of an
            # add on one-element tensors).
            t = _new_object(Tensor)
            t.data = raw
            t.grad = None
            t.requires_grad = record
            t._node = ctx if record else None
            t._index = 0
            return t
        return _wrap_outputs(ctx, record, arrays, raw)


_NEEDS_PAIR = (((False, False), (False, True)), ((True, False), (True, True)))


def apply_pair(cls, a, b, general):
    """``general(a, b)`` for the operators (``x + y``, ``x * 2.0``, ...), where ``general``
    is the op's function (``elementwise.add``: dtype promotion, checks, then
    ``cls.apply``): the same result, node and errors, with less Python on the way in the
    common case, floating Tensors of one dtype holding NumPy arrays, or one such Tensor and
    a Python float or int, which need no promotion. Anything else goes to ``general``.

    The node holds what ``apply`` gives it: ``edges`` (an edge or None per input) and
    ``needs_input_grad``, here one of four shared tuples (nothing allocated).
    """
    kind = type(a)
    if kind is float or kind is int:
        da, ra = a, False
    elif isinstance(a, Tensor) and type(a.data) is _ndarray:
        da, ra = a.data, a.requires_grad
    else:
        return general(a, b)
    kind = type(b)
    if kind is float or kind is int:
        db, rb = b, False
    elif isinstance(b, Tensor) and type(b.data) is _ndarray:
        db, rb = b.data, b.requires_grad
    else:
        return general(a, b)
    if type(da) is _ndarray:
        dtype = da.dtype
        if dtype.kind != "f" or (type(db) is _ndarray and db.dtype != dtype):
            return general(a, b)
    elif type(db) is not _ndarray or db.dtype.kind != "f":
        return general(a, b)
    ctx = _new_object(cls)
    record = (ra or rb) and _modes.grad_enabled
    if record:
        if ra:
            node = a._node
            ea = ((node, a._index, da.shape, da.dtype) if node is not None
                  else (grad_accumulator(a), 0, da.shape, da.dtype))
        else:
            ea = None
        if rb:
            node = b._node
            eb = ((node, b._index, db.shape, db.dtype) if node is not None
                  else (grad_accumulator(b), 0, db.shape, db.dtype))
        else:
            eb = None
        ctx.edges = (ea, eb)
        ctx.needs_input_grad = _NEEDS_PAIR[ra][rb]
    raw = cls.forward(ctx, da, db)
    if type(raw) is _ndarray and not grad_mode.anomaly_threads and not (record and ctx.saved):
        t = _new_object(Tensor)           # as in apply: Tensor._make inlined
        t.data = raw
        t.grad = None
        t.requires_grad = record
        t._node = ctx if record else None
        t._index = 0
        return t
    return _wrap_outputs(ctx, record, [da, db], raw)


def _wrap_outputs(ctx, record: bool, arrays: list, raw):
    """The output Tensors of ``forward``'s result ``raw`` (an array or a tuple of arrays):
    NumPy scalars made arrays, anomaly checks, and, when recording, the node's output
    metadata and the tags of what it saved."""
    single = type(raw) is not tuple
    outs = tuple([o if type(o) is _ndarray else _as_array(ctx.xp, o)
                  for o in ((raw,) if single else raw)])
    if grad_mode.anomaly_threads and _modes.anomaly:
        check_forward_anomaly(type(ctx).__name__, arrays, outs)
    node = ctx if record else None
    if record:
        if not single:
            ctx.n_outputs = len(outs)
            ctx.out_meta = tuple([(o.shape, o.dtype) for o in outs])
        if ctx.saved:
            _record_saved(ctx, arrays, raw, outs)
    if single:
        return _make_tensor(outs[0], node, 0)
    return tuple([_make_tensor(o, node, i) for i, o in enumerate(outs)])


def _record_saved(ctx, inputs, raw, outputs) -> None:
    """Mark each saved value as input i, output i or a constant (for create_graph), and
    note the write clock, against which backward checks that they were not written since.

    A saved output that NumPy returned as a scalar (0-d results) is replaced by the array
    the output Tensor holds, so that it stays tied to the graph. This is the one place that
    knows, per saved value, which input or output it is.
    """
    raw_outputs = raw if type(raw) is tuple else (raw,)
    values, tags = [], []
    for s in ctx.saved:
        tag = None
        for i, a in enumerate(inputs):
            if s is a:
                tag = ("in", i)
                break
        else:
            for i, o in enumerate(raw_outputs):
                if s is o:
                    tag = ("out", i)
                    s = outputs[i]
                    break
        values.append(s)
        tags.append(tag)
    ctx.saved, ctx.saved_tags = tuple(values), tuple(tags)
    if _versioned:
        ctx.saved_at = _writes[0]


def resave(ctx, old, new) -> None:
    """Put array ``new`` wherever ``ctx`` saved array ``old`` (by identity).

    What an in-place op does with the node that computed its values, when that node saved
    the array about to be overwritten: it hands the node a private copy of the old values
    (:mod:`engine.ops.inplace`). Nothing else refers to the copy, so the time the node
    saved at holds for it too.
    """
    ctx.saved = tuple([new if s is old else s for s in ctx.saved])


def _as_array(xp, value):
    """NumPy returns scalars from 0-d results: make every output an array."""
    return value if backend.is_cuda_array(value) else xp.asarray(value)
