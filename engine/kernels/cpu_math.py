"""Numba building blocks of the CPU kernels: an exp that vectorizes, row reductions, and
NumPy's BLAS product callable from inside a kernel (:data:`GEMM`).

Every function here compiles inside the kernels of :mod:`engine.kernels.cpu` and
:mod:`engine.kernels.cpu_attention` (float32 or float64 scalars and 1-D rows).

- ``np.exp`` inside ``@njit`` compiles to a scalar libm call per element; :func:`vexp` is
  exp written so a loop of it vectorizes (range reduction x = k ln 2 + r, a polynomial for
  exp(r), 2ᵏ built from its bits), accurate to about 1 ulp, with exp(-inf) = 0,
  exp(large) = inf, NaN kept and gradual underflow to subnormals.
- No ``fastmath`` beyond two flags that leave inf and NaN alone: ``contract`` (fused
  multiply-add) in :func:`vexp`, and ``reassoc`` in the row sums only (:func:`row_sum`,
  :func:`row_dot`), which lets LLVM add in SIMD lanes. Full fastmath would let LLVM drop
  inf/NaN handling (and the rounding trick in :func:`vexp`). The row max, which LLVM
  vectorizes only under no-NaN assumptions, keeps eight partial maxima by hand
  (:func:`row_max`). Flags are per function: a callee without them keeps exact IEEE
  semantics (Numba passes a caller's flags on only to callees that set none, so every
  helper here sets its own).
"""

from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from engine import threads

# error_model="numpy": x / 0 gives inf or NaN as in NumPy (no Python ZeroDivisionError,
# whose check also stops a loop with a division from vectorizing).
JIT = dict(cache=True, fastmath=False, error_model="numpy")
PARALLEL = dict(JIT, parallel=True)
# Contraction of a * b + c into one fused multiply-add: no effect on inf or NaN handling.
JIT_FMA = dict(JIT, fastmath={"contract"})
# Sums that LLVM may reassociate, i.e. add in SIMD lanes (as NumPy's sum does): 10x faster
# than a strict left-to-right chain, and a sum holding inf or NaN gives the same inf/NaN.
JIT_SUM = dict(JIT, fastmath={"reassoc", "contract"})


# ---------------------------------------------------------------- exp that vectorizes
@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret an int32 as a float32 (an LLVM bitcast: vectorizes, unlike ldexp)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.trunc(args[0], ir.IntType(32))
                               if args[0].type.width > 32 else args[0], ir.FloatType())
    return types.float32(bits), codegen


@intrinsic
def _float64_from_bits(typingctx, bits):
    """Reinterpret an int64 as a float64."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.sext(args[0], ir.IntType(64))
                               if args[0].type.width < 64 else args[0], ir.DoubleType())
    return types.float64(bits), codegen


@njit(**JIT_FMA)
def _exp32(x):
    """exp for float32: x = k ln2 + r, |r| ≤ ln2/2, exp(r) by Cephes' expf polynomial."""
    xc = x if x > np.float32(-104.0) else np.float32(-104.0)    # exp(-104) rounds to 0
    xc = xc if xc < np.float32(89.0) else np.float32(89.0)      # exp(89) rounds to inf
    magic = np.float32(12582912.0)                              # 1.5 · 2²³: round to int
    k = (xc * np.float32(1.4426950408889634) + magic) - magic
    r = (xc - k * np.float32(0.693359375)) - k * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * (r * r) + r + np.float32(1.0)
    ki = np.int32(k)
    k1 = ki >> 1                      # 2ᵏ as 2^k1 · 2^k2: both normal, so subnormal
    k2 = ki - k1                      # results are rounded once, correctly
    y = (p * _float32_from_bits((k1 + 127) << 23)) * _float32_from_bits((k2 + 127) << 23)
    return y if x == x else x         # NaN stays NaN


@njit(**JIT_FMA)
def _exp64(x):
    """exp for float64: x = k ln2 + r, exp(r) by Cephes' Padé form 1 + 2 r P / (Q - r P)."""
    xc = x if x > -746.0 else -746.0
    xc = xc if xc < 710.0 else 710.0
    magic = 6755399441055744.0                                  # 1.5 · 2⁵²
    k = (xc * 1.4426950408889634 + magic) - magic
    r = (xc - k * 6.93145751953125e-1) - k * 1.42860682030941723212e-6
    rr = r * r
    px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
              + 9.99999999999999999910e-1)
    qx = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
          + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0
    p = 1.0 + 2.0 * (px / (qx - px))
    ki = np.int64(k)
    k1 = ki >> 1
    k2 = ki - k1
    y = (p * _float64_from_bits((k1 + 1023) << 52)) * _float64_from_bits((k2 + 1023) << 52)
    return y if x == x else x


def vexp(x):
    """exp(x) for a float32 or float64 scalar inside Numba code (see the module docstring)."""
    return np.exp(x)


@overload(vexp, jit_options=JIT)
def _vexp_overload(x):
    if x == types.float32:
        return lambda x: _exp32(x)
    if x == types.float64:
        return lambda x: _exp64(x)
    return None


# ---------------------------------------------------------------- row reductions
@njit(**JIT)
def row_max(x, n):
    """max of x[:n], eight partial maxima (NaN-safe: a NaN row stays NaN downstream)."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = x.dtype.type(-np.inf)
    j = 0
    while j + 8 <= n:
        v0, v1, v2, v3 = x[j], x[j + 1], x[j + 2], x[j + 3]
        v4, v5, v6, v7 = x[j + 4], x[j + 5], x[j + 6], x[j + 7]
        m0 = v0 if v0 > m0 else m0
        m1 = v1 if v1 > m1 else m1
        m2 = v2 if v2 > m2 else m2
        m3 = v3 if v3 > m3 else m3
        m4 = v4 if v4 > m4 else m4
        m5 = v5 if v5 > m5 else m5
        m6 = v6 if v6 > m6 else m6
        m7 = v7 if v7 > m7 else m7
        j += 8
    while j < n:
        v0 = x[j]
        m0 = v0 if v0 > m0 else m0
        j += 1
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    m4 = m5 if m5 > m4 else m4
    m6 = m7 if m7 > m6 else m6
    m0 = m2 if m2 > m0 else m0
    m4 = m6 if m6 > m4 else m4
    return m4 if m4 > m0 else m0


@njit(**JIT_SUM)
def row_sum(x, n):
    """Σ x[:n] (summed in SIMD lanes: the order differs from a left-to-right sum)."""
    s = x.dtype.type(0)
    for j in range(n):
        s += x[j]
    return s


@njit(**JIT_SUM)
def row_dot(x, y, n):
    """Σ x[:n] y[:n] (SIMD lanes)."""
    s = x.dtype.type(0)
    for j in range(n):
        s += x[j] * y[j]
    return s


@njit(**JIT_SUM)
def exp_shifted_sum(x, m, out, n):
    """out[:n] = exp(x[:n] - m); returns Σ out[:n] (one pass; out and x distinct: LLVM
    vectorizes after a run-time check that they do not overlap)."""
    s = x.dtype.type(0)
    for j in range(n):
        e = vexp(x[j] - m)
        out[j] = e
        s += e
    return s


@njit(**JIT_SUM)
def sum_exp_shifted(x, m, n):
    """Σ exp(x[:n] - m) (nothing stored)."""
    s = x.dtype.type(0)
    for j in range(n):
        s += vexp(x[j] - m)
    return s


@njit(**JIT_SUM)
def exp_shifted_sum_inplace(x, m, n):
    """x[:n] = exp(x[:n] - m); returns Σ x[:n]."""
    s = x.dtype.type(0)
    for j in range(n):
        e = vexp(x[j] - m)
        x[j] = e
        s += e
    return s


# ---------------------------------------------------------------- BLAS inside kernels
def _cblas_gemm() -> dict:
    """{dtype: cblas_?gemm} of NumPy's OpenBLAS as ctypes functions, or {} when NumPy's BLAS
    is not an OpenBLAS found here (the kernels' callers then keep their Python loops)."""
    found = threads.openblas_library()
    if found is None:
        return {}
    lib, prefix, suffix = found
    index = ctypes.c_int64 if suffix == "64_" else ctypes.c_int
    out = {}
    for dtype, name, real in ((np.float32, "s", ctypes.c_float), (np.float64, "d",
                                                                  ctypes.c_double)):
        gemm = getattr(lib, f"{prefix}cblas_{name}gemm{suffix}", None)
        if gemm is not None:
            gemm.argtypes = [ctypes.c_int] * 3 + [index] * 3 + [
                real, ctypes.c_void_p, index, ctypes.c_void_p, index, real, ctypes.c_void_p,
                index]
            gemm.restype = None
            out[np.dtype(dtype)] = gemm
    return out


# {dtype: cblas_?gemm}: called inside kernels (passed in as an argument, so that their
# compiled code stays cacheable), with these CBLAS constants
GEMM = _cblas_gemm()
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


@njit(nogil=True, **JIT)
def product(gemm, a, b, c):
    """c = a · b by ``gemm`` (a value of :data:`GEMM`), on 2-D arrays laid out as
    C-contiguous ones (a row's values adjacent, the rows one after another)."""
    m, k = a.shape
    n = b.shape[1]
    one, zero = c.dtype.type(1), c.dtype.type(0)
    gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, m, n, k, one, a.ctypes.data, k, b.ctypes.data, n,
         zero, c.ctypes.data, n)
