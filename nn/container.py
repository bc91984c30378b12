"""Containers: Sequential, ModuleList, ModuleDict (as PyTorch's), and MLP.

Sub-modules are registered under their position (``"0"``, ``"1"``, ...) or key, so state
dict keys read ``0.weight``, ``layers.3.bias``, exactly as PyTorch names them.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from typing import Iterable, Iterator, Mapping

from nn.activation import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
from nn.linear import Dropout, Identity, Linear
from nn.module import Module


def _index(idx, n: int, what: str) -> int:
    idx = operator.index(idx)
    if not -n <= idx < n:
        raise IndexError(f"{what}: index {idx} is out of range for {n} modules")
    return idx % n


class Sequential(Module):
    """Calls its modules in order, each on the previous one's output.

    ``Sequential(m0, m1, ...)`` or ``Sequential(OrderedDict(name=module, ...))``;
    ``seq[i]``, ``seq[a:b]`` (a new Sequential), ``len``, iteration, ``append``.
    """

    def __init__(self, *args: Module) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        keys = list(self._modules)
        return self._modules[keys[_index(idx, len(keys), "Sequential")]]

    def __setitem__(self, idx: int, module: Module) -> None:
        keys = list(self._modules)
        self.add_module(keys[_index(idx, len(keys), "Sequential")], module)

    def __delitem__(self, idx) -> None:
        keys = list(self._modules)
        for k in (keys[idx] if isinstance(idx, slice) else
                  [keys[_index(idx, len(keys), "Sequential")]]):
            del self._modules[k]

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> Sequential:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        mods = list(self._modules.values())
        n = len(mods)
        if not -n <= index <= n:
            raise IndexError(f"Sequential.insert: index {index} is out of range for "
                             f"{n} modules")
        mods.insert(index % (n + 1) if index < 0 else index, module)
        self._modules.clear()
        for i, m in enumerate(mods):
            self.add_module(str(i), m)
        return self

    def forward(self, input):
        for m in self._modules.values():
            input = m(input)
        return input


class ModuleList(Module):
    """A list of modules, registered under "0", "1", ... (no forward of its own)."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(mods[idx])
        return mods[_index(idx, len(mods), "ModuleList")]

    def __setitem__(self, idx: int, module: Module) -> None:
        self.add_module(str(_index(idx, len(self), "ModuleList")), module)

    def __delitem__(self, idx) -> None:
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            del mods[idx]
        else:
            del mods[_index(idx, len(mods), "ModuleList")]
        self._modules.clear()
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._modules.clear()
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList(list(self) + list(other))

    def forward(self, *args, **kwargs):
        raise TypeError("ModuleList has no forward(): iterate over it and call its modules")


class ModuleDict(Module):
    """An ordered dict of modules, registered under their keys (no forward of its own)."""

    def __init__(self, modules: Mapping[str, Module] | Iterable | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no key {key!r} (keys: {list(self._modules)})")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key: str) -> Module:
        m = self[key]
        del self._modules[key]
        return m

    def clear(self) -> None:
        self._modules.clear()

    def update(self, modules) -> None:
        items = modules.items() if isinstance(modules, Mapping) else modules
        for key, m in items:
            self.add_module(key, m)

    def forward(self, *args, **kwargs):
        raise TypeError("ModuleDict has no forward(): index it and call its modules")


_ACTIVATIONS = {"relu": ReLU, "gelu": GELU, "tanh": Tanh, "sigmoid": Sigmoid,
                "leaky_relu": LeakyReLU, "identity": Identity}


class MLP(Sequential):
    """A multi-layer perceptron through the layer ``sizes`` (at least two).

    Layout, for ``sizes = [d0, d1, ..., dk]``::

        Linear(d0, d1) → activation → Dropout(dropout) → Linear(d1, d2) → ... → Linear(dk-1, dk)

    i.e. activation then Dropout between consecutive Linears and nothing after the last, so
    the output is raw (logits). The Dropout modules are present even when ``dropout=0``, so
    the state dict keys (``0.weight``, ``3.weight``, ``6.weight``, ...) do not depend on it.
    ``activation``: 'relu', 'gelu', 'tanh', 'sigmoid', 'leaky_relu', 'identity', or a Module
    class (or any callable returning a Module).
    """

    def __init__(self, sizes: Iterable[int], activation="relu", dropout: float = 0.0,
                 bias: bool = True, device=None, dtype=None) -> None:
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least an input and an output size, "
                             f"got {sizes}")
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise ValueError(f"MLP: unknown activation {activation!r} "
                                 f"(choose from {sorted(_ACTIVATIONS)})")
            make_act = _ACTIVATIONS[activation]
        elif callable(activation):
            make_act = activation
        else:
            raise TypeError(f"MLP: activation must be a name or a Module class, got "
                            f"{type(activation).__name__}")
        layers = []
        for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(d_in, d_out, bias=bias, device=device, dtype=dtype))
            if i < len(sizes) - 2:
                layers.append(make_act())
                layers.append(Dropout(dropout))
        super().__init__(*layers)
        self.sizes = sizes
