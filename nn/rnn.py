"""Recurrent layers as PyTorch has them: ``RNN``, ``LSTM``, ``GRU`` and their cells.

Parameters and their layout are PyTorch's, so state dicts move between the two as arrays.
``W_ih`` is (G·H, in) and ``W_hh`` is (G·H, H): G gate blocks of H rows each, stacked
along the first axis in PyTorch's order::

    LSTM  G = 4   rows [0, H) input gate i    [H, 2H) forget gate f
                       [2H, 3H) cell candidate g    [3H, 4H) output gate o
    GRU   G = 3   rows [0, H) reset gate r    [H, 2H) update gate z    [2H, 3H) candidate n
    RNN   G = 1

One step, with x (B, in), h and c (B, H), xa = x W_ihᵀ + b_ih and ha = h W_hhᵀ + b_hh
(B, G·H), the gates from two matmuls (formulas in :mod:`engine.ops.rnn`)::

    LSTM  i, f, o = σ(xa + ha)  g = tanh(xa + ha)  c' = f ⊙ c + i ⊙ g   h' = o ⊙ tanh(c')
    GRU   r, z = σ(xa + ha)   n = tanh(xa_n + r ⊙ ha_n)   h' = (1 - z) ⊙ n + z ⊙ h
    RNN   h' = tanh(xa + ha)  (or relu)

Over a sequence, ``x W_ihᵀ + b_ih`` for all T steps is ONE matmul on the (T·B, in) input;
each step then adds ``h W_hhᵀ + b_hh`` (one matmul) and applies the gate formulas. An LSTM
or GRU layer in one direction is one op over the whole sequence
(:func:`engine.ops.lstm.lstm_sequence`, :func:`engine.ops.gru.gru_sequence`) whose weight
gradients are single matmuls over all steps; under ``engine.use_fused(False)``, and for
the RNN, it runs as the literal per-step formulas.
"""

from __future__ import annotations

import math
import warnings

import engine
import nn.functional as F
from engine.ops.gru import gru_sequence
from engine.ops.lstm import lstm_sequence
from engine.ops.rnn import gru_cell, lstm_cell, recurrent_sequence, rnn_cell
from engine.tensor import Tensor
from nn import init
from nn.module import Module, empty_parameter

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
NONLINEARITY = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}


# --------------------------------------------------------------------------- helpers
def _reset_uniform(module: Module, hidden_size: int) -> None:
    k = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        init.uniform_(p, -k, k)


def _check_dtype(op: str, x: Tensor, w: Tensor) -> None:
    if x.dtype != w.dtype:
        raise TypeError(f"{op}: input dtype {x.dtype} does not match the parameters' dtype "
                        f"{w.dtype} (input shape {x.shape}); convert one with .to(dtype=...)")


def _zeros_state(x: Tensor, shape: tuple) -> Tensor:
    xp = engine.backend.array_module(x.data)
    return Tensor._make(xp.zeros(shape, dtype=x.dtype), None, 0)


def _mode(op: str, nonlinearity: str) -> str:
    if nonlinearity not in NONLINEARITY:
        raise ValueError(f"{op}: unknown nonlinearity {nonlinearity!r}; expected 'tanh' or "
                         "'relu'")
    return NONLINEARITY[nonlinearity]


def _states(op: str, hx, names: tuple, want: tuple, input_shape: tuple) -> tuple:
    """``hx`` as a tuple of Tensors of shape ``want``, one per name (an LSTM's h and c)."""
    count = len(names)
    states = tuple(hx) if count == 2 else (hx,)
    if len(states) != count or any(getattr(s, "shape", None) != want for s in states):
        names = " and ".join(names)
        got = " and ".join(str(getattr(s, "shape", s)) for s in states)
        raise ValueError(f"{op}: expected {names} of shape {want}, got {got} "
                         f"(input {input_shape})")
    return states


# --------------------------------------------------------------------------- cells
class RNNCellBase(Module):
    """What the three cells share: parameters ``weight_ih`` (G·H, in), ``weight_hh``
    (G·H, H), ``bias_ih`` and ``bias_hh`` (G·H), all from U(-1/√H, 1/√H); input (B, in)
    or unbatched (in); missing states are zeros."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool,
                 device=None, dtype=None) -> None:
        super().__init__()
        name = type(self).__name__
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"{name}: input_size and hidden_size must be positive, got "
                             f"{input_size} and {hidden_size}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.mode = mode
        rows = GATES[mode] * hidden_size
        self.weight_ih = empty_parameter((rows, input_size), dtype)
        self.weight_hh = empty_parameter((rows, hidden_size), dtype)
        if bias:
            self.bias_ih = empty_parameter((rows,), dtype)
            self.bias_hh = empty_parameter((rows,), dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        """Every parameter from U(-1/√H, 1/√H), in registration order (as PyTorch)."""
        _reset_uniform(self, self.hidden_size)

    def _step(self, input: Tensor, hx, count: int):
        """Checks and batching, then the step: ``(xa, ha, states, batched)``."""
        x, name, H = input, type(self).__name__, self.hidden_size
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input of shape (batch, {self.input_size}) "
                             f"or ({self.input_size},), got {x.shape}")
        _check_dtype(name, x, self.weight_ih)
        batched = x.ndim == 2
        if not batched:
            x = x.reshape(1, self.input_size)                     # (in,) -> (1, in)
        B = x.shape[0]
        if hx is None:
            states = tuple(_zeros_state(x, (B, H)) for _ in range(count))
        else:
            states = _states(name, hx, ("h", "c")[:count], (B, H) if batched else (H,),
                             input.shape)
            if not batched:
                states = tuple(s.reshape(1, H) for s in states)
        xa = x @ self.weight_ih.T                                 # (B, G·H)
        ha = states[0] @ self.weight_hh.T                         # (B, G·H)
        if self.bias:
            xa = xa + self.bias_ih
            ha = ha + self.bias_hh
        return xa, ha, states, batched

    def _unbatch(self, t: Tensor, batched: bool) -> Tensor:
        return t if batched else t.reshape(self.hidden_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        return s


class RNNCell(RNNCellBase):
    """One Elman RNN step: ``h' = RNNCell(x, h)`` = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)
    (or relu), PyTorch's ``nn.RNNCell``; h (B, H) or (H), zeros if None."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None) -> None:
        super().__init__(_mode("RNNCell", nonlinearity), input_size, hidden_size, bias,
                         device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        xa, ha, (h,), batched = self._step(input, hx, 1)
        return self._unbatch(rnn_cell(xa, ha, self.nonlinearity), batched)


class LSTMCell(RNNCellBase):
    """One LSTM step: ``(h', c') = LSTMCell(x, (h, c))`` (PyTorch's ``nn.LSTMCell``);
    gates i, f, g, o; ``hx = (h, c)`` each (B, H) or (H), zeros if None."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx=None) -> tuple[Tensor, Tensor]:
        xa, ha, (_, c), batched = self._step(input, hx, 2)
        h, c = lstm_cell(xa, ha, c)
        return self._unbatch(h, batched), self._unbatch(c, batched)


class GRUCell(RNNCellBase):
    """One GRU step: ``h' = GRUCell(x, h)`` (PyTorch's ``nn.GRUCell``); gates r, z, n with
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)); h (B, H) or (H), zeros if None."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        xa, ha, (h,), batched = self._step(input, hx, 1)
        return self._unbatch(gru_cell(xa, ha, h), batched)


# --------------------------------------------------------------------------- layers
class RNNBase(Module):
    """A multi-layer recurrent network over a sequence (PyTorch's ``nn.RNNBase``).

    ``output, h_n = GRU/RNN(input, h_0)``; ``output, (h_n, c_n) = LSTM(input, (h_0, c_0))``.
    Input (T, B, in), or (B, T, in) when ``batch_first``, or unbatched (T, in); output
    (T, B, D·H) holding the last layer's h at every step (forward and reverse directions
    concatenated when ``bidirectional``, D = 2); h_n (and c_n) (L·D, B, H) the final
    states of every layer and direction, in the order layer 0 forward, layer 0 reverse,
    layer 1 forward, ... (never batch-first, as PyTorch). Missing initial states are zeros.

    Parameters per layer k and direction (suffix ``_reverse`` for the reverse one):
    ``weight_ih_l{k}`` (G·H, in or D·H), ``weight_hh_l{k}`` (G·H, H), ``bias_ih_l{k}``,
    ``bias_hh_l{k}`` (G·H); all from U(-1/√H, 1/√H). ``dropout`` is applied to the output
    of every layer except the last, in training mode.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        name = type(self).__name__
        if input_size <= 0 or hidden_size <= 0 or num_layers <= 0:
            raise ValueError(f"{name}: input_size, hidden_size and num_layers must be "
                             f"positive, got {input_size}, {hidden_size} and {num_layers}")
        if isinstance(dropout, bool) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout={dropout} and num_layers=1: dropout acts only "
                          "between layers, so it has no effect", UserWarning, stacklevel=3)
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        D = 2 if bidirectional else 1
        rows = GATES[mode] * hidden_size
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else D * hidden_size
            for suffix in self._suffixes(layer):
                setattr(self, "weight_ih" + suffix, empty_parameter((rows, layer_in), dtype))
                setattr(self, "weight_hh" + suffix, empty_parameter((rows, hidden_size),
                                                                    dtype))
                if bias:
                    setattr(self, "bias_ih" + suffix, empty_parameter((rows,), dtype))
                    setattr(self, "bias_hh" + suffix, empty_parameter((rows,), dtype))
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        """Every parameter from U(-1/√H, 1/√H), in registration order (as PyTorch)."""
        _reset_uniform(self, self.hidden_size)

    def flatten_parameters(self) -> None:
        """PyTorch compacts the weights into one buffer for cuDNN here; the ops of this
        module use the parameters as they are, so there is nothing to do."""

    def _suffixes(self, layer: int) -> list[str]:
        base = f"_l{layer}"
        return [base, base + "_reverse"] if self.bidirectional else [base]

    def _direction(self, x: Tensor, states: tuple, suffix: str, reverse: bool):
        """One layer in one direction over x (T, B, in): (T, B, H) and the final states."""
        W_ih = getattr(self, "weight_ih" + suffix)
        W_hh = getattr(self, "weight_hh" + suffix)
        b_ih = getattr(self, "bias_ih" + suffix) if self.bias else None
        b_hh = getattr(self, "bias_hh" + suffix) if self.bias else None
        if self.mode == "LSTM":
            out, h, c = lstm_sequence(x, *states, W_ih, W_hh, b_ih, b_hh, reverse)
            return out, (h, c)
        if self.mode == "GRU":
            out, h = gru_sequence(x, states[0], W_ih, W_hh, b_ih, b_hh, reverse)
            return out, (h,)
        out, h = recurrent_sequence(x, states[0], W_ih, W_hh, b_ih, b_hh, reverse,
                                    self.mode)
        return out, (h,)

    def forward(self, input: Tensor, hx=None):
        x, name = input, type(self).__name__
        L, H = self.num_layers, self.hidden_size
        D = 2 if self.bidirectional else 1
        count = 2 if self.mode == "LSTM" else 1
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            layout = "(batch, seq, " if self.batch_first else "(seq, batch, "
            raise ValueError(f"{name}: expected input of shape {layout}{self.input_size}) "
                             f"or (seq, {self.input_size}), got {x.shape}")
        _check_dtype(name, x, self.weight_ih_l0)
        batched = x.ndim == 3
        if not batched:
            x = x.reshape(x.shape[0], 1, x.shape[1])                  # (T, in) -> (T, 1, in)
        elif self.batch_first:
            x = x.swapaxes(0, 1)                                      # (B, T, in) -> (T, B, in)
        T, B = x.shape[0], x.shape[1]
        if T == 0:
            raise ValueError(f"{name}: the input sequence is empty (input shape "
                             f"{input.shape})")
        if hx is not None:
            want = (L * D, B, H) if batched else (L * D, H)
            hx = _states(name, hx, ("h_0", "c_0")[:count], want, input.shape)
            if not batched:
                hx = tuple(s.reshape(L * D, 1, H) for s in hx)
        finals = [[] for _ in range(count)]
        for layer in range(L):
            outs = []
            for d, suffix in enumerate(self._suffixes(layer)):
                k = layer * D + d
                if hx is None:
                    states = tuple(_zeros_state(x, (B, H)) for _ in range(count))
                else:
                    states = tuple(s[k] for s in hx)
                out, states = self._direction(x, states, suffix, reverse=d == 1)
                outs.append(out)
                for acc, s in zip(finals, states):
                    acc.append(s)
            x = outs[0] if D == 1 else engine.cat(outs, dim=-1)   # (T, B, D·H)
            if self.dropout > 0 and self.training and layer < L - 1:
                x = F.dropout(x, self.dropout, training=True)
        finals = [engine.stack(acc, dim=0) for acc in finals]          # (L·D, B, H)
        if not batched:
            x = x.reshape(T, D * H)
            finals = [s.reshape(L * D, H) for s in finals]
        elif self.batch_first:
            x = x.swapaxes(0, 1)                                      # (T, B, ·) -> (B, T, ·)
        return x, (tuple(finals) if count == 2 else finals[0])

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN layers (PyTorch's ``nn.RNN``): h_t = tanh(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ
    + b_hh), or relu with ``nonlinearity='relu'``. ``output, h_n = RNN(input, h_0)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None) -> None:
        super().__init__(_mode("RNN", nonlinearity), input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, device, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """LSTM layers (PyTorch's ``nn.LSTM`` without ``proj_size``): gates i, f, g, o;
    ``output, (h_n, c_n) = LSTM(input, (h_0, c_0))``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype)


class GRU(RNNBase):
    """GRU layers (PyTorch's ``nn.GRU``): gates r, z, n with n = tanh(W_in x + b_in +
    r ⊙ (W_hn h + b_hn)) and h' = (1 - z) ⊙ n + z ⊙ h; ``output, h_n = GRU(input, h_0)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype)


__all__ = ["RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", "RNNBase", "RNN", "LSTM", "GRU"]
