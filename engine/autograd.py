"""Reverse-mode differentiation: walk the recorded graph from the outputs back to the leaves.

Every edge ends at a node: the Function that produced an input, or a leaf's
``AccumulateGrad``. The walk is iterative (no recursion, so a 100,000-op chain is fine):
count, for every node reachable from the outputs, how many edges point to it; then run the
nodes in topological order, each as soon as every edge into it has delivered its gradient
(summed out of place), popping those gradients as they are used. A Function node runs its
backward and passes one gradient along each of its edges; an accumulator adds the sum to
its leaf's ``.grad`` (or, for ``engine.grad``, hands it back). Before a node's backward
runs, the arrays it saved must still be at the versions they were saved at (no in-place
write since, :mod:`engine.versions`). A node's saved arrays (and the arrays its class names
in ``ctx_arrays``) are dropped right after its backward ran unless ``retain_graph``. During
the walk this thread records only under ``create_graph``.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from engine import backend, versions
from engine.function import (
    _RELEASED, AccumulateGrad, freed_graph_error, gradient_edge, release_saved,
)
from engine.grad_mode import _modes, anomaly_enabled
from engine.tensor import Tensor

_versioned = versions.table   # empty while no live memory was ever written in place
_writes = versions.writes     # unchanged since a node saved: nothing to check
_tensor_xp = None             # ctx.xp under create_graph (engine.ops.tensor_xp)


def use_tensor_namespace(namespace) -> None:
    """Make ``namespace`` what ``ctx.xp`` is while a backward builds a graph: NumPy's
    functions on Tensors, so that each backward formula is differentiated again. The ops
    that make it up sit above this module, so :mod:`engine.ops` hands it over on import."""
    global _tensor_xp
    _tensor_xp = namespace


def _as_root_grad(t: Tensor, g, create_graph: bool):
    """Validate or create the gradient that seeds the walk at output ``t``."""
    if g is None:
        if t.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be created implicitly only for a one-element output, "
                f"got shape {t.shape}; pass the gradient of the output explicitly"
            )
        g = backend.array_module(t.data).ones(t.data.shape, dtype=t.data.dtype)
    if isinstance(g, Tensor):
        g = g if create_graph else g.data
    elif not (isinstance(g, np.ndarray) or backend.is_cuda_array(g)):
        g = backend.array_module(t.data).asarray(g, dtype=t.data.dtype)
    if g.shape != t.shape:
        raise RuntimeError(
            f"backward: gradient shape {tuple(g.shape)} does not match output shape {t.shape}"
        )
    if create_graph and not isinstance(g, Tensor):
        g = Tensor._make(g, None, 0)
    return g


def _walk_order(roots):
    """For every node reachable from ``roots``, how many edges point to it (iterative DFS)."""
    deps = {}
    stack = list(dict.fromkeys(roots))    # each node once
    seen = set(stack)
    while stack:
        node = stack.pop()
        for edge in node.edges:
            if edge is None:
                continue
            parent = edge[0]
            deps[parent] = deps.get(parent, 0) + 1
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return deps


def _array(g):
    """The array of a gradient (Tensors appear under create_graph)."""
    return g.data if isinstance(g, Tensor) else g


def _tensor_at(node, index, value) -> Tensor:
    """The Tensor whose gradient goes to output ``index`` of ``node``, holding ``value``."""
    if type(node) is AccumulateGrad:
        return node.variable
    return Tensor._make(value, node, index)


def _saved_as_tensors(node):
    """The node's saved values as Tensors wired into the graph (for create_graph)."""
    out = []
    for value, tag in zip(node.saved_tensors, node.saved_tags):
        if not (isinstance(value, np.ndarray) or backend.is_cuda_array(value)):
            out.append(value)         # Python scalars and the like stay as they are
        elif tag is None:             # an array that is neither an input nor an output
            out.append(Tensor._make(value, None, 0))
        elif tag[0] == "out":
            out.append(Tensor._make(value, node, tag[1]))
        else:
            edge = node.edges[tag[1]]
            out.append(Tensor._make(value, None, 0) if edge is None else
                       _tensor_at(edge[0], edge[1], value))
    return tuple(out)


def _run_node(node, grads, create_graph):
    """Call ``node.backward`` on arrays, or on Tensors when building a graph; returns one
    gradient (or None) per input. Grad mode is set by the caller for the whole walk."""
    if node.saved is _RELEASED:
        raise freed_graph_error(node)
    if _versioned and node.saved and node.saved_at != _writes[0]:
        check_saved_versions(node)
    if create_graph:
        if node.once_differentiable:
            raise RuntimeError(
                f"{type(node).__name__}: its backward is not differentiable (a fused "
                "kernel); compute higher-order gradients with engine.use_fused(False)"
            )
        grads = [g if isinstance(g, Tensor) else Tensor._make(g, None, 0) for g in grads]
        xp_saved = node.xp
        node.xp = _tensor_xp
        node._saved_view = _saved_as_tensors(node) if node.saved else ()
        try:
            gxs = node.backward(node, *grads)
        finally:
            node.xp = xp_saved
            node._saved_view = None
    else:
        gxs = node.backward(node, *grads)
    if type(gxs) is not tuple:
        gxs = (gxs,)
    if len(gxs) != len(node.edges):
        raise RuntimeError(f"{type(node).__name__}.backward returned {len(gxs)} gradients "
                           f"for {len(node.edges)} inputs")
    return gxs


def check_saved_versions(node) -> None:
    """Raise if an array ``node`` saved for backward was written in place since (PyTorch's
    error): its gradient formula would read values that are no longer the forward's."""
    at = node.saved_at
    for i, value in enumerate(node.saved):
        if not versions.is_array(value):
            continue
        now, later, exact = versions.written_since(value, at)
        if later:
            expected = f"{now - later}" if exact else f"{now - later} or lower"
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by "
                f"an inplace operation: [{value.dtype} tensor of shape {tuple(value.shape)}]"
                f"{_saved_origin(node, i)} is at version {now}; expected version {expected} "
                f"instead (saved by {type(node).__name__} for its backward; clone() it "
                "before the in-place op, or make the op out of place)"
            )


def _saved_origin(node, i: int) -> str:
    """", which is output k of Op," for a saved value that an op produced, else ""."""
    tag = node.saved_tags[i] if node.saved_tags is not None else None
    if tag is None:
        return ""
    if tag[0] == "out":
        return f", which is output {tag[1]} of {type(node).__name__},"
    edge = node.edges[tag[1]]
    if edge is None or type(edge[0]) is AccumulateGrad:
        return ""                         # a leaf: PyTorch names no producer either
    return f", which is output {edge[1]} of {type(edge[0]).__name__},"


def _check_grad(op, i, g, shape, dtype, anomaly: bool):
    """Every gradient must be an array with the shape and dtype of its input."""
    if isinstance(g, np.generic):
        g = np.asarray(g)          # NumPy turns 0-d results into scalars
    data = _array(g)
    if not (isinstance(data, np.ndarray) or backend.is_cuda_array(data)):
        raise RuntimeError(f"{op}.backward returned {type(g).__name__} for input {i}, "
                           "expected an array")
    if data.shape != shape or data.dtype != dtype:
        raise RuntimeError(
            f"{op}.backward returned a gradient of shape {data.shape} and dtype {data.dtype} "
            f"for input {i} of shape {shape} and dtype {dtype}"
        )
    if anomaly:
        xp = backend.array_module(data)
        if not bool(xp.isfinite(data).all()):
            kind = "NaN" if bool(xp.isnan(data).any()) else "inf"
            raise FloatingPointError(
                f"detect_anomaly: {op} backward produced {kind} in the gradient of input {i} "
                f"(shape {shape})"
            )
    return g


def _add_grad(node_grads, node, index, g) -> None:
    """Add ``g`` to the gradient of output ``index`` of ``node`` (out of place)."""
    slots = node_grads.get(node)
    if slots is None:
        node_grads[node] = slots = [None] * node.n_outputs
    old = slots[index]
    slots[index] = g if old is None else old + g


def _output_grads(node, grads):
    """The gradient of every output of ``node``: zeros, on the others' device, for the
    outputs of a multi-output node that no consumer used."""
    if grads is None or node.n_outputs == 1 or all(g is not None for g in grads):
        return grads
    xp = backend.array_module(_array(next(g for g in grads if g is not None)))
    return [g if g is not None else xp.zeros(shape, dtype=dtype)
            for g, (shape, dtype) in zip(grads, node.out_meta)]


def _retain(node, grads, create_graph: bool, shared: set) -> None:
    """Set ``.grad`` of the outputs of ``node`` that called ``retain_grad()``."""
    for index, ref in node.retained:
        t = ref()
        if t is not None:
            g = grads[index]
            t.grad = g if create_graph and isinstance(g, Tensor) else \
                Tensor._make(_array(g), None, 0)
            shared.add(id(t.grad.data))


def run_backward(roots, root_grads, retain_graph, create_graph, inputs=None):
    """The walk. Accumulates into leaves' ``.grad``, or, given ``inputs``, returns their
    gradients (a list, None where no path) without touching ``.grad``."""
    if retain_graph is None:
        retain_graph = create_graph
    node_grads = {}      # node -> gradient per output, summed over its consumers so far
    shared = set()       # ids of gradient arrays held outside this pass (_accumulate_leaf)
    root_nodes = []
    for t, g in zip(roots, root_grads):
        if not t.requires_grad:
            raise RuntimeError(
                f"backward: output of shape {t.shape} does not require grad and has no "
                "grad_fn (did you compute it under no_grad, or from tensors that do not "
                "require grad?)"
            )
        g = _as_root_grad(t, g, create_graph)
        shared.add(id(_array(g)))                  # the caller holds it
        node, index = gradient_edge(t)
        _add_grad(node_grads, node, index, g)
        root_nodes.append(node)
    wanted = None if inputs is None else [gradient_edge(t) for t in inputs]
    capture = None if wanted is None else dict.fromkeys(wanted)

    previous = _modes.grad_enabled
    _modes.grad_enabled = create_graph        # record only when a graph of grads is wanted
    try:
        _walk(root_nodes, node_grads, capture, shared, retain_graph, create_graph)
    finally:
        _modes.grad_enabled = previous
    if capture is None:
        return None
    return [g if g is None or isinstance(g, Tensor) else Tensor._make(g, None, 0)
            for g in (capture[key] for key in wanted)]


def _walk(roots, node_grads, capture, shared, retain_graph, create_graph):
    """Run every node once all its consumers have contributed their gradients; a leaf's
    accumulator adds the summed gradient to ``.grad``, unless gradients are captured for
    ``engine.grad`` (``capture``: ``(node, index) -> gradient``)."""
    deps = _walk_order(roots)
    anomaly = anomaly_enabled()
    ready = deque(n for n in dict.fromkeys(roots) if n not in deps)
    while ready:
        node = ready.popleft()
        grads = _output_grads(node, node_grads.pop(node, None))
        if grads is not None and capture is not None:
            for i, g in enumerate(grads):
                if (node, i) in capture:
                    capture[(node, i)] = g
        if type(node) is AccumulateGrad:
            if grads is not None and capture is None:
                _accumulate_leaf(node.variable, grads[0], create_graph, shared)
            continue
        gxs = None
        if grads is not None:
            if node.retained is not None:
                _retain(node, grads, create_graph, shared)
            gxs = _run_node(node, grads, create_graph)
            if not retain_graph and (node.saved or node.ctx_arrays):
                release_saved(node)
        i = -1
        for edge in node.edges:
            i += 1
            if edge is None:
                continue
            target, index, shape, dtype = edge
            g = None if gxs is None else gxs[i]
            if g is not None:
                if type(g) is not np.ndarray or g.shape != shape or g.dtype != dtype or anomaly:
                    g = _check_grad(type(node).__name__, i, g, shape, dtype, anomaly)
                _add_grad(node_grads, target, index, g)
            remaining = deps[target] - 1
            deps[target] = remaining
            if remaining == 0:
                ready.append(target)


def _accumulate_leaf(leaf: Tensor, g, create_graph: bool, shared: set) -> None:
    """``leaf.grad += g``, out of place, so that no two leaves share one gradient array.

    A gradient the backward pass created for this leaf alone is kept as it is; one that
    may be seen elsewhere (a view, a read-only broadcast, the caller's own seed gradient,
    or an array already given to another leaf, as ``a + b`` gives ``gy`` to both) is
    copied first. Copying every gradient would add a full pass over memory per step.
    """
    if isinstance(g, Tensor) and not create_graph:
        g = g.data
    if leaf.grad is None:
        if isinstance(g, Tensor):
            leaf.grad = g
            return
        # CuPy's flags have no ``writeable`` (its arrays are never read-only)
        if g.base is not None or not getattr(g.flags, "writeable", True) or id(g) in shared:
            g = g.copy()
        shared.add(id(g))
        leaf.grad = Tensor._make(g, None, 0)
    elif isinstance(g, Tensor) or leaf.grad.requires_grad:
        leaf.grad = leaf.grad + g       # a graph of the gradient is being built
    else:
        leaf.grad = Tensor._make(leaf.grad.data + g, None, 0)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False) -> None:
    """Accumulate the gradients of ``tensors`` into the leaves' ``.grad``."""
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    tensors = list(tensors)
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    elif isinstance(grad_tensors, Tensor) or not isinstance(grad_tensors, (list, tuple)):
        grad_tensors = [grad_tensors]
    run_backward(tensors, list(grad_tensors), retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, create_graph=False, retain_graph=None,
         allow_unused=False):
    """The gradients of ``outputs`` with respect to ``inputs`` (PyTorch's autograd.grad).

    Returns a tuple with one Tensor per input; ``.grad`` attributes are left untouched. With
    ``create_graph=True`` the returned gradients are themselves differentiable.
    """
    single_out = isinstance(outputs, Tensor)
    outputs = [outputs] if single_out else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor) or not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad")
    result = run_backward(outputs, list(grad_outputs), retain_graph, create_graph, inputs)
    for i, g in enumerate(result):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {i} (shape {inputs[i].shape}) was not used to compute the "
                "outputs; pass allow_unused=True to get None for it"
            )
    return tuple(result)
