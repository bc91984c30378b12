"""``Optimizer``: parameter groups, per-parameter state, and PyTorch's state_dict layout;
and :class:`SGD`, the plainest update rule, which the others refine.

An optimizer holds ``param_groups`` (a list of dicts: ``'params'`` plus the group's
hyper-parameters, defaults filled in) and ``state`` (a dict keyed by the Parameter object
itself, by identity, never by ``id()``, holding the running buffers of each parameter).

``step(closure=None)`` is the same for every optimizer: it evaluates the closure (with grad
enabled), then, without recording a graph, calls ``update(group)`` for each parameter
group and ``finish_step()``. A subclass implements ``update`` as the literal update rule on
raw arrays:

- parameters are updated in place (``p.data[...]`` arithmetic), outside any graph; the step
  counts one in-place write per updated parameter (its ``_version``, as PyTorch's in-place
  updates do), so a backward through a graph that saved a parameter before the step raises
  instead of using the new values;
- a ``.grad`` array is never modified (gradient arrays may be shared): every step works on
  new arrays derived from it;
- state buffers live on the parameter's device with its dtype.

``state_dict()`` gives PyTorch's layout, so checkpoints carry over between the two::

    {'state': {0: {'step': 3, 'exp_avg': Tensor, ...}, 1: {...}},
     'param_groups': [{'lr': 0.001, ..., 'params': [0, 1]}]}

with parameters numbered in group order. ``finish_step`` applies the masks of pruned
parameters (:mod:`optim.pruning`) again, so pruned weights stay exactly zero.
"""

from __future__ import annotations

import abc
import copy
from collections import defaultdict
from itertools import chain

import numpy as np

from engine import backend, versions
from engine.grad_mode import enable_grad, no_grad
from engine.tensor import Tensor
from optim import pruning


class _Required:
    """Marks a hyper-parameter that every group must give (no default)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


class Optimizer(abc.ABC):
    """Base class: ``Optimizer(params, defaults)``.

    ``params``: an iterable of Tensors, of ``(name, Tensor)`` pairs (``named_parameters()``),
    or of dicts each holding ``'params'`` and the hyper-parameters that differ from the
    defaults for that group.
    """

    def __init__(self, params, defaults: dict) -> None:
        self.defaults = defaults
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors "
                            "or dicts, got a single Tensor (wrap it in a list)")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items())
                      if k not in ("params", "param_names")]
        return "\n".join(lines) + "\n)"

    # ------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict) -> None:
        """Append a group; missing hyper-parameters take the optimizer's defaults."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: param_group must be a dict, got "
                            f"{type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: parameters must be an ordered collection; a set's "
                            "order changes between runs (use a list)")
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        if names and len(names) != len(params):
            raise ValueError(f"{name}: give every parameter a name or none of them")
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name} can only optimize Tensors, got {type(p).__name__}")
            if p.dtype.kind != "f":
                raise TypeError(f"{name} can only optimize floating-point Tensors, got "
                                f"{p.dtype} of shape {p.shape}")
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor (shape "
                                 f"{p.shape}); optimize the leaves it was computed from")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a parameter group contains the same parameter twice")
        group["params"] = params
        if names:
            group["param_names"] = names
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"{name}: parameter group didn't specify a value of "
                                 f"required optimization parameter {key}")
            group.setdefault(key, default)
        taken = {p for g in self.param_groups for p in g["params"]}
        if any(p in taken for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter "
                             "group")
        self.param_groups.append(group)

    # ------------------------------------------------------------ steps
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``.grad = None``, or fresh zeros (never zeroed in place,
        since a gradient array may be shared)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    xp = backend.array_module(p.grad.data)
                    p.grad = Tensor._make(xp.zeros_like(p.grad.data), None, 0)

    def step(self, closure=None):
        """One update of every parameter that has a gradient.

        ``closure``, if given, re-evaluates the model and returns the loss (it typically
        calls ``zero_grad`` and ``backward``); it runs first, with grad enabled, and its
        loss is returned. The update runs without recording a graph.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self.update(group)
            self.finish_step()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    versions.bump(p.data)
        return loss

    @abc.abstractmethod
    def update(self, group: dict) -> None:
        """The update rule, applied in place to the parameters of ``group`` that have a
        gradient (see :meth:`_gradients`)."""

    def finish_step(self) -> None:
        """What every step ends with: θ ← θ ⊙ mask for the pruned parameters among this
        optimizer's, so that they stay exactly zero whatever the update rule did."""
        pruning.apply_masks(p for g in self.param_groups for p in g["params"])

    @staticmethod
    def _gradients(group):
        """(p, g) for each parameter of ``group`` that has a gradient; g is the raw array,
        negated when the group maximizes."""
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad.data
            yield p, (-g if group["maximize"] else g)

    def _zeros_like(self, p: Tensor, fill: float = 0.0) -> Tensor:
        """A state buffer on ``p``'s device with ``p``'s dtype and shape."""
        xp = backend.array_module(p.data)
        return Tensor._make(xp.full(p.shape, fill, dtype=p.dtype), None, 0)

    # ------------------------------------------------------------ state dicts
    def state_dict(self) -> dict:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [index, ...]}]}``;
        the state Tensors are the live buffers (save or copy them to keep a snapshot)."""
        index: dict = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(p, len(index))
            packed["params"] = [index[p] for p in group["params"]]
            groups.append(packed)
        state = {index[p]: dict(s) for p, s in self.state.items() if p in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore state and hyper-parameters from :meth:`state_dict` (ours, or PyTorch's
        with its tensors as arrays). Buffers are copied onto each parameter's device and
        dtype; ``step`` counts become ints."""
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has "
                             f"{len(saved_groups)} parameter groups, the optimizer "
                             f"{len(self.param_groups)}")
        for i, (g, s) in enumerate(zip(self.param_groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(f"{name}.load_state_dict: parameter group {i} holds "
                                 f"{len(s['params'])} parameters in the state dict but "
                                 f"{len(g['params'])} in the optimizer")
        params_by_index = dict(zip(
            chain.from_iterable(s["params"] for s in saved_groups),
            chain.from_iterable(g["params"] for g in self.param_groups)))
        state: defaultdict = defaultdict(dict)
        for k, values in state_dict["state"].items():
            key = int(k)
            if key not in params_by_index:
                raise ValueError(f"{name}.load_state_dict: state for parameter {key}, which "
                                 "no parameter group lists")
            p = params_by_index[key]
            state[p] = {sk: _cast_state(sk, v, p) for sk, v in values.items()}
        groups = []
        for g, s in zip(self.param_groups, saved_groups):
            new = {k: copy.deepcopy(v) for k, v in s.items() if k != "params"}
            if isinstance(new.get("betas"), list):
                new["betas"] = tuple(new["betas"])
            new["params"] = g["params"]
            if "param_names" in g and "param_names" not in new:
                new["param_names"] = g["param_names"]
            groups.append(new)
        self.state = state
        self.param_groups = groups


def _cast_state(key: str, value, p: Tensor):
    """A copy of one saved state entry: ``step`` as an int, arrays as Tensors on ``p``'s
    device (floating ones with ``p``'s dtype), anything else as it is."""
    if isinstance(value, Tensor):
        value = value.data
    if key == "step":
        return int(float(np.asarray(backend.to_numpy(value)) if hasattr(value, "shape")
                         else value))
    if value is None or not hasattr(value, "shape"):
        return copy.deepcopy(value)
    arr = backend.to_device(value if backend.is_cuda_array(value) else np.asarray(value),
                            p.device)
    xp = backend.array_module(arr)
    dtype = p.dtype if arr.dtype.kind == "f" else arr.dtype
    return Tensor._make(xp.array(arr, dtype=dtype, copy=True), None, 0)


_WORDS = {"lr": "learning rate", "eps": "epsilon value"}


def check_nonnegative(optimizer: str, **values) -> None:
    """Refuse a negative or NaN hyperparameter, in PyTorch's words: ``Adam: invalid
    learning rate: -1.0``, ``SGD: invalid momentum value: -0.5``."""
    for key, value in values.items():
        if not 0.0 <= value:
            raise ValueError(f"{optimizer}: invalid {_WORDS.get(key, key + ' value')}: "
                             f"{value}")


class SGD(Optimizer):
    """θ ← θ - α g  (docs/formulas.md, F1 gradient descent), with PyTorch's options, in
    PyTorch's order:

        g ← -g                      if maximize
        g ← g + λ θ                 weight decay λ (L2 penalty)
        b ← g                       first step with momentum μ, then
        b ← μ b + (1 - τ) g         dampening τ
        g ← g + μ b  (nesterov)  or  g ← b
        θ ← θ - α g

    ``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
    maximize=False)``; state per parameter: ``momentum_buffer`` (when μ ≠ 0).
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False) -> None:
        check_nonnegative("SGD", lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def update(self, group: dict) -> None:
        lr, mu = float(group["lr"]), float(group["momentum"])
        tau, wd = float(group["dampening"]), float(group["weight_decay"])
        for p, g in self._gradients(group):
            if wd != 0:
                g = g + wd * p.data
            if mu != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    xp = backend.array_module(g)
                    buf = Tensor._make(xp.array(g, dtype=p.dtype, copy=True), None, 0)
                    state["momentum_buffer"] = buf
                else:
                    b = buf.data
                    b *= mu
                    b += (1.0 - tau) * g
                g = g + mu * buf.data if group["nesterov"] else buf.data
            p.data -= lr * g
