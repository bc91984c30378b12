"""``Module`` and ``Parameter``: the containers every layer is built from, as PyTorch's.

Attributes are registered by ``__setattr__``: a ``Parameter`` becomes a parameter, a
``Module`` a sub-module, anything given to ``register_buffer`` a buffer, each in an
insertion-ordered dict. Names are dotted paths (``encoder.layers.0.linear1.weight``), the
same as PyTorch's, so a state dict moves between the two as plain arrays.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Iterator

import numpy as np

from engine import backend, dtypes
from engine.tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A leaf Tensor that a Module registers as trainable (``requires_grad=True``)."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True):
        arr = data.data if isinstance(data, Tensor) else data
        Tensor.__init__(self, arr if hasattr(arr, "dtype") else np.asarray(arr))
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def empty_parameter(shape, dtype=None, requires_grad: bool = True) -> Parameter:
    """An uninitialized host Parameter of ``shape`` in ``dtype`` (the default dtype when
    None), for a layer's ``reset_parameters`` to fill."""
    dtype = dtypes.get_default_dtype() if dtype is None else np.dtype(dtype)
    return Parameter(np.empty(tuple(shape), dtype=dtype), requires_grad=requires_grad)


class Module:
    """Base class of all layers: override ``forward``; call ``super().__init__()`` first."""

    training: bool

    def __init__(self) -> None:
        d = self.__dict__
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent"] = set()
        d["_modules"] = OrderedDict()
        d["training"] = True

    # ------------------------------------------------------------ registration
    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called "
                f"(call super().__init__() first in {type(self).__name__}.__init__)"
            )
        params, buffers, modules = d["_parameters"], d["_buffers"], d["_modules"]
        if isinstance(value, Parameter):
            self._forget(name, keep="_parameters")
            params[name] = value
        elif isinstance(value, Module):
            self._forget(name, keep="_modules")
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to parameter {name!r} of "
                    f"{type(self).__name__} (expected nn.Parameter or None)"
                )
            params[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} to buffer {name!r} "
                                "(expected Tensor or None)")
            buffers[name] = value
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to sub-module {name!r}")
            modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str, keep: str | None = None) -> None:
        """Drop ``name`` from every store but ``keep`` (where a re-assignment then
        replaces the value in its original position, as PyTorch)."""
        d = self.__dict__
        d.pop(name, None)
        for store in ("_parameters", "_buffers", "_modules"):
            if store != keep:
                d[store].pop(name, None)
        d["_non_persistent"].discard(name)

    def __getattr__(self, name: str):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if name in d[store]:
                del d[store][name]
                d["_non_persistent"].discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None")
        self._forget(name, keep="_parameters")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None,
                        persistent: bool = True) -> None:
        """A non-trainable tensor saved in the state dict (unless ``persistent=False``)."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None")
        self._forget(name, keep="_buffers")
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module or None")
        self._forget(name, keep="_modules")
        self._modules[name] = module

    # ------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "", memo=None) -> Iterator[tuple[str, Module]]:
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, store: str, prefix: str, recurse: bool):
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_prefix, m in mods:
            for name, v in m.__dict__[store].items():
                if v is None or id(v) in seen:
                    continue
                seen.add(id(v))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), v

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        """(dotted name, Parameter) in registration order; shared ones once."""
        yield from self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        yield from self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn) -> Module:
        """Call ``fn`` on every sub-module (children first) and on self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad = Tensor._make(backend.array_module(p.grad.data).zeros_like(
                    p.grad.data), None, 0)

    # ------------------------------------------------------------ devices and dtypes
    def to(self, device=None, dtype=None) -> Module:
        """Move (in place) every parameter and buffer to ``device`` and/or cast the
        floating ones to ``dtype``; the Parameter objects stay the same."""
        if device is not None:
            device = backend.parse_device(device)
        if dtype is not None:
            dtype = np.dtype(dtype)
        for t in list(self.parameters()) + list(self.buffers()):
            for holder in (t, t.grad):
                if holder is None:
                    continue
                data = holder.data
                if dtype is not None and data.dtype.kind == "f" and data.dtype != dtype:
                    data = data.astype(dtype)
                if device is not None:
                    data = backend.to_device(data, device)
                holder.data = data
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, index: int = 0) -> Module:
        return self.to(f"cuda:{index}")

    def double(self) -> Module:
        return self.to(dtype=np.float64)

    def float(self) -> Module:
        return self.to(dtype=np.float32)

    # ------------------------------------------------------------ state
    def state_dict(self, prefix: str = "") -> OrderedDict:
        """Parameters and persistent buffers by dotted name (detached, sharing data)."""
        out = OrderedDict()
        for mod_prefix, m in self.named_modules(prefix.rstrip(".")):
            for store in ("_parameters", "_buffers"):
                for name, v in m.__dict__[store].items():
                    if v is None or (store == "_buffers" and name in m._non_persistent):
                        continue
                    out[f"{mod_prefix}.{name}" if mod_prefix else name] = v.detach()
        return out

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values (Tensors or arrays) into the existing parameters and buffers.

        Each value is converted to the target's dtype and device. With ``strict`` a
        missing, unexpected or mis-shaped key raises, naming every such key.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = []
        for k, target in own.items():
            if k in state_dict:
                value = state_dict[k]
                shape = tuple(value.shape) if hasattr(value, "shape") else np.shape(value)
                if shape != target.shape:
                    mismatched.append(f"{k}: checkpoint {shape} vs model {target.shape}")
        if mismatched or (strict and (missing or unexpected)):
            lines = [f"Error(s) in loading state_dict for {type(self).__name__}:"]
            if missing:
                lines.append("  missing keys: " + ", ".join(missing))
            if unexpected:
                lines.append("  unexpected keys: " + ", ".join(unexpected))
            if mismatched:
                lines.append("  size mismatch: " + "; ".join(mismatched))
            raise RuntimeError("\n".join(lines))
        for k, target in self._state_targets():
            if k not in state_dict:
                continue
            value = state_dict[k]
            value = value.data if isinstance(value, Tensor) else value
            xp = backend.array_module(target.data)
            new = backend.to_device(np.asarray(value) if not backend.is_cuda_array(value)
                                    else value, target.device)
            target.data = xp.array(new, dtype=target.dtype, copy=True)
        return IncompatibleKeys(missing, unexpected)

    def _state_targets(self):
        for mod_prefix, m in self.named_modules():
            for store in ("_parameters", "_buffers"):
                for name, v in m.__dict__[store].items():
                    if v is not None and not (store == "_buffers" and name in m._non_persistent):
                        yield (f"{mod_prefix}.{name}" if mod_prefix else name), v

    # ------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {sub}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
