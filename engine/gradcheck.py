"""Numerical gradient checks: analytic backward vs float64 central differences.

The objective differentiated is ``L = Σₖ ⟨uₖ, fₖ(inputs)⟩`` with a *random* upstream
gradient ``uₖ`` for each output ``fₖ``. A plain sum (all-ones ``u``) would let broken
backwards pass: the sum of a softmax is constant, so a softmax backward returning zeros
would look right. For each checked tensor ``t`` (an input, or a module parameter):

- small ``t``: every element, ``∂L/∂tⱼ ≈ (L(t + εeⱼ) - L(t - εeⱼ)) / 2ε``;
- large ``t``: random unit directions ``v``, ``⟨∇L, v⟩ ≈ (L(t + εv) - L(t - εv)) / 2ε``.

A failure names the tensor, its worst element, and the analytic and numeric values.
"""

from __future__ import annotations

import numpy as np

from engine import backend
from engine.autograd import grad as autograd_grad
from engine.grad_mode import enable_grad, no_grad
from engine.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with central differences."""


def _prepare_inputs(inputs):
    """float64 copies of floating inputs, keeping which ones require grad."""
    if isinstance(inputs, (Tensor, np.ndarray)):
        inputs = (inputs,)
    out = []
    for x in inputs:
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            x = Tensor._make(x.astype(np.float64), None, 0).requires_grad_()
        elif isinstance(x, Tensor) and x.dtype.kind == "f":
            wants = x.requires_grad
            x = Tensor._make(x.data.astype(np.float64), None, 0)
            x.requires_grad_(wants)
        out.append(x)
    return out


def _named_params(fn, params):
    """(name, tensor) pairs of the parameters to check, all required to be float64."""
    if params is None and hasattr(fn, "named_parameters"):
        params = list(fn.named_parameters())
    elif params is None:
        return []
    elif hasattr(params, "named_parameters"):
        params = list(params.named_parameters())
    named = []
    for i, p in enumerate(params):
        name, p = p if isinstance(p, tuple) else (f"param{i}", p)
        if not p.requires_grad:
            continue
        if p.dtype != np.float64:
            raise TypeError(
                f"gradcheck: parameter {name!r} is {p.dtype}; gradcheck needs float64 "
                "(convert the module first, e.g. module.double())"
            )
        named.append((name, p))
    return named


def _outputs(fn, inputs):
    out = fn(*inputs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: output {k} is {type(o).__name__}, expected a Tensor")
        if o.dtype.kind == "f" and o.dtype != np.float64:
            raise TypeError(f"gradcheck: output {k} is {o.dtype}; the computation must be "
                            "float64 for finite differences to mean anything")
    return outs


def _objective(fn, inputs, upstream) -> float:
    """L = Σₖ ⟨uₖ, fₖ⟩ evaluated without recording a graph."""
    with no_grad():
        outs = _outputs(fn, inputs)
    return float(sum(np.sum(backend.to_numpy(o.data) * u) for o, u in zip(outs, upstream)
                     if u is not None))


def _numeric(fn, inputs, upstream, t, eps, full_max, n_dirs, rng):
    """Central-difference gradient (full) or directional derivatives (large tensors)."""
    xp = backend.array_module(t.data)
    if t.numel() <= full_max:
        num = np.zeros(t.shape, dtype=np.float64)
        for j in range(t.numel()):
            pos = np.unravel_index(j, t.shape)
            orig = t.data[pos].item()
            t.data[pos] = orig + eps
            plus = _objective(fn, inputs, upstream)
            t.data[pos] = orig - eps
            minus = _objective(fn, inputs, upstream)
            t.data[pos] = orig
            num[pos] = (plus - minus) / (2 * eps)
        return num, None
    directions = []
    values = []
    orig = t.data.copy()
    for _ in range(n_dirs):
        v = rng.standard_normal(t.shape)
        v /= np.linalg.norm(v)
        vd = xp.asarray(v)
        t.data[...] = orig + eps * vd
        plus = _objective(fn, inputs, upstream)
        t.data[...] = orig - eps * vd
        minus = _objective(fn, inputs, upstream)
        t.data[...] = orig
        directions.append(v)
        values.append((plus - minus) / (2 * eps))
    return np.array(values), directions


def _fail(message, raise_exception):
    if raise_exception:
        raise GradcheckError(message)
    return False


def gradcheck(fn, inputs, *, params=None, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0, full_jacobian_max: int = 512,
              n_directions: int = 8, raise_exception: bool = True) -> bool:
    """Check ``fn``'s gradients against central differences in float64.

    ``inputs``: Tensors (those with ``requires_grad`` are checked), float arrays (checked),
    or anything else ``fn`` takes. Floating inputs are copied to float64. ``params``: extra
    leaves to check in place, e.g. ``module.parameters()``; when ``fn`` is a module its
    parameters are checked by default. Returns True, or raises :class:`GradcheckError`
    naming the tensor, the worst element and the analytic and numeric values.
    """
    inputs = _prepare_inputs(inputs)
    checked = [(f"input {i}", x) for i, x in enumerate(inputs)
               if isinstance(x, Tensor) and x.requires_grad]
    checked += [(f"parameter {name!r}", p) for name, p in _named_params(fn, params)]
    if not checked:
        raise ValueError("gradcheck: no input or parameter requires grad")
    rng = np.random.default_rng(seed)
    outs = _outputs(fn, inputs)
    diff_outs = [o for o in outs if o.requires_grad]
    if not diff_outs:
        return _fail("gradcheck: no output depends differentiably on the inputs",
                     raise_exception)
    upstream = [rng.standard_normal(o.shape) if o.requires_grad else None for o in outs]
    us = [Tensor._make(backend.array_module(o.data).asarray(u), None, 0)
          for o, u in zip(outs, upstream) if u is not None]
    try:
        analytic = autograd_grad(diff_outs, [t for _, t in checked], grad_outputs=us,
                                 allow_unused=True)
    except RuntimeError as exc:
        return _fail(f"gradcheck: backward raised: {exc}", raise_exception)
    for (name, t), g in zip(checked, analytic):
        a = np.zeros(t.shape) if g is None else backend.to_numpy(g.data).astype(np.float64)
        num, directions = _numeric(fn, inputs, upstream, t, eps, full_jacobian_max,
                                   n_directions, rng)
        if directions is not None:
            a = np.array([np.sum(a * v) for v in directions])
        err = np.abs(a - num) - (atol + rtol * np.abs(num))
        if err.size and (not np.all(np.isfinite(a)) or err.max() > 0 or
                         not np.all(np.isfinite(num))):
            bad = np.where(np.isfinite(err), err, np.inf)
            j = int(np.argmax(bad))
            if directions is None:
                where_ = f"element {tuple(int(i) for i in np.unravel_index(j, t.shape))}"
            else:
                where_ = f"random direction {j}"
            return _fail(
                f"gradcheck failed for {name} of shape {t.shape} at {where_}: "
                f"analytic {a.flat[j]:.8g}, numeric {num.flat[j]:.8g} "
                f"(|diff| {abs(a.flat[j] - num.flat[j]):.3g}, atol {atol}, rtol {rtol}); "
                f"max |diff| over the tensor {np.max(np.abs(a - num)):.3g}",
                raise_exception,
            )
    return True


def gradgradcheck(fn, inputs, *, params=None, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, seed: int = 0, raise_exception: bool = True,
                  **kwargs) -> bool:
    """Check second derivatives: gradcheck of ``x ↦ ∂⟨u, fn(x)⟩/∂x`` built with
    ``create_graph=True``, the upstream ``u`` random and itself checked as an input."""
    inputs = _prepare_inputs(inputs)
    named = _named_params(fn, params)
    rng = np.random.default_rng(seed + 1)
    with no_grad():
        outs = _outputs(fn, inputs)
    us = [Tensor._make(backend.array_module(o.data).asarray(rng.standard_normal(o.shape)),
                       None, 0).requires_grad_() for o in outs]
    n = len(inputs)

    def first_grads(*args):
        xs, u = list(args[:n]), list(args[n:])
        wrt = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
        wrt += [p for _, p in named]
        with enable_grad():   # also when gradcheck evaluates this under no_grad
            out = _outputs(fn, xs)
            gs = autograd_grad(out, wrt, grad_outputs=u, create_graph=True,
                               allow_unused=True)
        gs = [g for g in gs if g is not None and g.requires_grad]
        if not gs:
            raise GradcheckError("gradgradcheck: the first derivatives do not depend on "
                                 "anything differentiable (is fn linear?)")
        return tuple(gs)

    return gradcheck(first_grads, inputs + us, params=named or None,
                     eps=eps, atol=atol, rtol=rtol, seed=seed,
                     raise_exception=raise_exception, **kwargs)
