"""Recurrent layers: ``LSTMCell`` and ``LSTM``, the LSTM's formulas on engine ops.

Parameters and their layout are PyTorch's, so state dicts move between the two as arrays.
``W_ih`` is (4H, in) and ``W_hh`` is (4H, H); the four gates are stacked along the first
axis in the order i, f, g, o::

    rows [0, H)    input gate      i
    rows [H, 2H)   forget gate     f
    rows [2H, 3H)  cell candidate  g
    rows [3H, 4H)  output gate     o

One step, with x (B, in), h and c (B, H)::

    a  = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh        (B, 4H): the four gates from two matmuls
    i  = σ(a_i)    f = σ(a_f)    g = tanh(a_g)    o = σ(a_o)
    c' = f ⊙ c + i ⊙ g
    h' = o ⊙ tanh(c')

Over a sequence, ``x W_ihᵀ + b_ih + b_hh`` for all T steps is ONE matmul on the (T·B, in)
input; each step then adds ``h W_hhᵀ`` (one matmul) and applies the gate formulas.

The step is the op :func:`engine.ops.rnn.lstm_cell` (docs/formulas.md, the LSTM): its gate
formulas exist twice, on engine ops (differentiable to any order) and as one fused op (one
op per step, first-order only), chosen by ``engine.use_fused`` as for the other fused ops;
tests check that both agree.
"""

from __future__ import annotations

import math
import warnings

import engine
import nn.functional as F
from engine.ops.rnn import LSTMCellFunction, lstm_cell, lstm_cell_reference
from engine.tensor import Tensor
from nn import init
from nn.module import Module, empty_parameter


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


# --------------------------------------------------------------------------- LSTMCell
class LSTMCell(Module):
    """One LSTM step: ``(h', c') = LSTMCell(x, (h, c))`` (PyTorch's ``nn.LSTMCell``).

    Parameters ``weight_ih`` (4H, in), ``weight_hh`` (4H, H), ``bias_ih`` (4H),
    ``bias_hh`` (4H), gates stacked i, f, g, o; all drawn from U(-1/√H, 1/√H).
    Input (B, in) or unbatched (in); ``hx = (h, c)`` each (B, H) or (H), zeros if None.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"LSTMCell: input_size and hidden_size must be positive, got "
                             f"{input_size} and {hidden_size}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.weight_ih = empty_parameter((4 * hidden_size, input_size), dtype)
        self.weight_hh = empty_parameter((4 * hidden_size, hidden_size), dtype)
        if bias:
            self.bias_ih = empty_parameter((4 * hidden_size,), dtype)
            self.bias_hh = empty_parameter((4 * hidden_size,), dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        """Every parameter from U(-1/√H, 1/√H), in registration order (as PyTorch)."""
        _reset_uniform(self, self.hidden_size)

    def forward(self, input: Tensor, hx=None) -> tuple[Tensor, Tensor]:
        x = input
        H = self.hidden_size
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"LSTMCell: expected input of shape (batch, {self.input_size}) "
                             f"or ({self.input_size},), got {x.shape}")
        _check_dtype("LSTMCell", x, self.weight_ih)
        batched = x.ndim == 2
        if not batched:
            x = x.reshape(1, self.input_size)                     # (in,) -> (1, in)
        B = x.shape[0]
        if hx is None:
            h = c = _zeros_state(x, (B, H))
        else:
            h, c = hx
            want = (B, H) if batched else (H,)
            if h.shape != want or c.shape != want:
                raise ValueError(f"LSTMCell: expected h and c of shape {want}, got "
                                 f"{h.shape} and {c.shape} (input {input.shape})")
            if not batched:
                h, c = h.reshape(1, H), c.reshape(1, H)
        xa = x @ self.weight_ih.T                                 # (B, 4H)
        ha = h @ self.weight_hh.T                                 # (B, 4H)
        if self.bias:
            xa = xa + self.bias_ih
            ha = ha + self.bias_hh
        h, c = lstm_cell(xa, ha, c)
        if not batched:
            h, c = h.reshape(H), c.reshape(H)
        return h, c

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        return s if self.bias else s + ", bias=False"


# --------------------------------------------------------------------------- LSTM
class LSTM(Module):
    """A multi-layer LSTM over a sequence (PyTorch's ``nn.LSTM`` without ``proj_size``).

    ``output, (h_n, c_n) = LSTM(input, (h_0, c_0))`` with input (T, B, in), or (B, T, in)
    when ``batch_first``, or unbatched (T, in); output (T, B, D·H) holding the last
    layer's h at every step (forward and reverse directions concatenated when
    ``bidirectional``, D = 2); h_n and c_n (L·D, B, H) the final states of every layer and
    direction, in the order layer 0 forward, layer 0 reverse, layer 1 forward, ...
    (never batch-first, as PyTorch). Missing initial states are zeros.

    Parameters per layer k and direction (suffix ``_reverse`` for the reverse one):
    ``weight_ih_l{k}`` (4H, in or D·H), ``weight_hh_l{k}`` (4H, H), ``bias_ih_l{k}``,
    ``bias_hh_l{k}`` (4H); gates i, f, g, o; all from U(-1/√H, 1/√H). ``dropout`` is
    applied to the output of every layer except the last, in training mode.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0 or num_layers <= 0:
            raise ValueError(f"LSTM: input_size, hidden_size and num_layers must be positive, "
                             f"got {input_size}, {hidden_size} and {num_layers}")
        if not 0.0 <= dropout <= 1.0 or isinstance(dropout, bool):
            raise ValueError(f"LSTM: dropout must be a number in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"LSTM: dropout={dropout} and num_layers=1: dropout acts only "
                          "between layers, so it has no effect", UserWarning, stacklevel=2)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        D = 2 if bidirectional else 1
        H4 = 4 * hidden_size
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else D * hidden_size
            for suffix in self._suffixes(layer):
                setattr(self, "weight_ih" + suffix, empty_parameter((H4, layer_in), dtype))
                setattr(self, "weight_hh" + suffix, empty_parameter((H4, hidden_size), dtype))
                if bias:
                    setattr(self, "bias_ih" + suffix, empty_parameter((H4,), dtype))
                    setattr(self, "bias_hh" + suffix, empty_parameter((H4,), dtype))
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        """Every parameter from U(-1/√H, 1/√H), in registration order (as PyTorch)."""
        _reset_uniform(self, self.hidden_size)

    def _suffixes(self, layer: int) -> list[str]:
        base = f"_l{layer}"
        return [base, base + "_reverse"] if self.bidirectional else [base]

    def _direction(self, x: Tensor, h: Tensor, c: Tensor, suffix: str, reverse: bool):
        """Run one layer in one direction over x (T, B, in); returns (T, B, H), h, c."""
        T, B, n_in = x.shape
        W_ih = getattr(self, "weight_ih" + suffix)
        W_hh_T = getattr(self, "weight_hh" + suffix).T               # (H, 4H)
        xa = x.reshape(T * B, n_in) @ W_ih.T                         # (T·B, 4H): one matmul
        if self.bias:
            xa = xa + (getattr(self, "bias_ih" + suffix) + getattr(self, "bias_hh" + suffix))
        steps = engine.split(xa.reshape(T, B, xa.shape[-1]), 1, dim=0)   # T × (1, B, 4H)
        order = range(T - 1, -1, -1) if reverse else range(T)
        hs = [None] * T
        for t in order:
            h, c = lstm_cell(steps[t], h @ W_hh_T, c)
            hs[t] = h
        return engine.stack(hs, dim=0), h, c

    def forward(self, input: Tensor, hx=None):
        x = input
        L, H = self.num_layers, self.hidden_size
        D = 2 if self.bidirectional else 1
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            layout = "(batch, seq, " if self.batch_first else "(seq, batch, "
            raise ValueError(f"LSTM: expected input of shape {layout}{self.input_size}) or "
                             f"(seq, {self.input_size}), got {x.shape}")
        _check_dtype("LSTM", x, self.weight_ih_l0)
        batched = x.ndim == 3
        if not batched:
            x = x.reshape(x.shape[0], 1, x.shape[1])                  # (T, in) -> (T, 1, in)
        elif self.batch_first:
            x = x.swapaxes(0, 1)                                      # (B, T, in) -> (T, B, in)
        T, B = x.shape[0], x.shape[1]
        if T == 0:
            raise ValueError(f"LSTM: the input sequence is empty (input shape {input.shape})")
        if hx is None:
            h0 = c0 = None
        else:
            h0, c0 = hx
            want = (L * D, B, H) if batched else (L * D, H)
            if h0.shape != want or c0.shape != want:
                raise ValueError(f"LSTM: expected h_0 and c_0 of shape {want}, got "
                                 f"{h0.shape} and {c0.shape} (input {input.shape})")
            if not batched:
                h0, c0 = h0.reshape(L * D, 1, H), c0.reshape(L * D, 1, H)
        h_n, c_n = [], []
        for layer in range(L):
            outs = []
            for d, suffix in enumerate(self._suffixes(layer)):
                k = layer * D + d
                if h0 is None:
                    h = c = _zeros_state(x, (B, H))
                else:
                    h, c = h0[k], c0[k]
                out, h, c = self._direction(x, h, c, suffix, reverse=d == 1)
                outs.append(out)
                h_n.append(h)
                c_n.append(c)
            x = outs[0] if D == 1 else engine.cat(outs, dim=-1)   # (T, B, D·H)
            if self.dropout > 0 and self.training and layer < L - 1:
                x = F.dropout(x, self.dropout, training=True)
        h_n, c_n = engine.stack(h_n, dim=0), engine.stack(c_n, dim=0)   # (L·D, B, H)
        if not batched:
            return x.reshape(T, D * H), (h_n.reshape(L * D, H), c_n.reshape(L * D, H))
        if self.batch_first:
            x = x.swapaxes(0, 1)                                      # (T, B, ·) -> (B, T, ·)
        return x, (h_n, c_n)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


__all__ = ["LSTMCell", "LSTM", "LSTMCellFunction", "lstm_cell", "lstm_cell_reference"]
