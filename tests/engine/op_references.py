"""NumPy references of the op table (:mod:`op_table`), called with the same PyTorch
argument names as the ops."""

from __future__ import annotations

import math

import numpy as np

erf = np.vectorize(math.erf, otypes=[np.float64])


def softmax(x, dim):
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    y = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if keepdims:
        return y
    return y.reshape(()) if axis is None else np.squeeze(y, axis=axis)


def gelu(x):
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def squeeze(x, dim=None):
    dims = range(x.ndim) if dim is None else dim
    return x.reshape(tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1)))


def flatten(x, start_dim, end_dim):
    s = x.shape
    return x.reshape(s[:start_dim] + (-1,) + s[end_dim + 1:])


def split(x, split_size_or_sections, dim):
    n = x.shape[dim]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = split_size_or_sections
    return tuple(np.split(x, np.cumsum(sizes)[:-1].astype(int), axis=dim))


def chunk(x, chunks, dim):
    n = x.shape[dim]
    if n == 0:
        return tuple(np.split(x, [0] * (chunks - 1), axis=dim))
    return split(x, -(-n // chunks), dim)


def narrow(x, dim, start, length):
    start = start + x.shape[dim] if start < 0 else start
    return np.take(x, np.arange(start, start + length), axis=dim)


def expand(x, sizes):
    lead = len(sizes) - x.ndim
    shape = sizes[:lead] + tuple(n if s == -1 else s for s, n in zip(sizes[lead:], x.shape))
    return np.broadcast_to(x, shape)


def sort_values(x, dim, descending):
    s = np.sort(x, axis=dim)
    return np.flip(s, axis=dim) if descending else s


def topk(x, k, dim, largest):
    return np.take(sort_values(x, dim, largest), np.arange(k), axis=dim)


def median(x, dim, keepdim):
    n = x.shape[dim]
    return np.take(np.sort(x, axis=dim), [(n - 1) // 2] if keepdim else (n - 1) // 2,
                   axis=dim)


def norm(x, p, dim, keepdim):
    p = 2 if p == "fro" else p
    a = np.abs(x)
    if p == float("inf"):
        return a.max(axis=dim, keepdims=keepdim) if x.size else a.sum(axis=dim,
                                                                       keepdims=keepdim)
    return (a ** p).sum(axis=dim, keepdims=keepdim) ** (1 / p)


def gather(x, dim, index):
    dim %= x.ndim
    return np.take_along_axis(x[tuple(slice(0, m) if a != dim else slice(None)
                                      for a, m in enumerate(index.shape))], index, axis=dim)


def pad(x, pad_width, value):
    return np.pad(x, pad_width, constant_values=value)


def clip(x, lo, hi):
    return np.clip(x, lo, hi)
