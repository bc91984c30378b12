"""A fake CuPy on NumPy: xpgrad's CUDA code path, run and checked on a machine without a GPU.

:func:`install` (given pytest's ``monkeypatch``) puts modules named ``cupy``,
``cupy.cuda``, ``cupy.random``, ``cupyx``, ``cupyx.scipy`` and ``cupyx.scipy.special`` into
``sys.modules`` and resets ``engine.backend`` so that its lazy ``import cupy`` finds them:
from then on ``"cuda"`` / ``"cuda:0"`` are devices, ``x.to("cuda")`` makes fake device
arrays, and every engine path that branches on the device takes its CUDA branch.

A fake device array is a ``cupy._fake.ndarray`` (tests/fake_cupy_array.py): a wrapper
around a NumPy array (so the numbers are NumPy's, and equal the CPU path's) that is as
strict as CuPy where host and device code get mixed up, and a little stricter where
xpgrad's own rules are:

- it is not an ``np.ndarray``, and ``np.asarray(x)`` raises as CuPy does (use ``.get()``);
- a NumPy array (of any shape, 0-d too) meeting it in an operator, a ufunc, a function of
  the fake module or ``cupyx.scatter_add`` raises ``TypeError: Unsupported type`` as in
  CuPy; so does assigning one into it (CuPy accepts that only for scalars);
- results are fake arrays, 0-d ones where NumPy would give a scalar (as CuPy does);
- ``numpy.<function>(x)`` raises (xpgrad takes functions from ``array_module(x)``);
  ``numpy.<ufunc>(x)`` works, as in CuPy;
- the fake module holds only functions CuPy 13 (the oldest version xpgrad supports) has,
  and records in ``NAMES_USED`` every name the code asked it for;
- its ufuncs are only called (no ``.at``, ``.reduce``...): xpgrad scatters through
  ``cupyx.scatter_add``, which takes only the dtypes of CuPy's atomic adds.

Only device 0 exists; ``cuda.Device(1)`` raises as an invalid ordinal would.
"""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pytest

from fake_cupy_array import (
    _UFUNCS, DEVICE_COUNT, SYNC_CALLS, CUDARuntimeError, Device, Stream, _call, _index,
    _inner, _reject, _unwrap, ndarray,
)

__all__ = ["NAMES_USED", "SYNC_CALLS", "install", "is_fake", "make_modules", "ndarray",
           "simulate_kernels"]

NAMES_USED: set = set()


# ----------------------------------------------------------------------------- functions
# Functions of the cupy namespace in CuPy 13 (checked against its reference documentation),
# with its ufuncs (fake_cupy_array._UFUNCS); anything else is absent from the fake module,
# as from CuPy.
_FUNCTIONS = """empty empty_like zeros zeros_like ones ones_like full full_like eye identity
arange linspace copy tri tril triu diag diagflat meshgrid reshape ravel moveaxis rollaxis
swapaxes transpose atleast_1d atleast_2d atleast_3d broadcast_arrays broadcast_to
expand_dims squeeze concatenate stack hstack vstack dstack column_stack split array_split
repeat tile unique flip fliplr flipud roll pad where take take_along_axis ix_ nonzero
flatnonzero argwhere ravel_multi_index unravel_index indices choose compress diagonal
select sum prod mean var std nanmean nansum amax amin max min argmax argmin cumsum cumprod
diff clip around dot vdot inner outer einsum tensordot trace all any
count_nonzero isclose allclose array_equal sort argsort searchsorted bincount
may_share_memory shares_memory
result_type can_cast promote_types issubdtype finfo iinfo dtype""".split()
_TYPES = """bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 intp uintp float16
float32 float64 complex64 complex128 generic number integer signedinteger unsignedinteger
inexact floating complexfloating""".split()


class _Module(types.ModuleType):
    """A module that records every attribute the code asks it for."""

    def __getattribute__(self, name):
        NAMES_USED.add(name)
        return super().__getattribute__(name)


class _Ufunc:
    """A fake ``cupy.ufunc``: called on fake arrays only; no ``.at`` / ``.reduce``."""

    def __init__(self, uf):
        self._uf = uf
        self.__name__ = uf.__name__
        self.nin, self.nout = uf.nin, uf.nout

    def __call__(self, *args, **kwargs):
        return _call(self._uf, args, kwargs, f"cupy.{self.__name__}")

    def __repr__(self):
        return f"<ufunc '{self.__name__}'>"


def _function(name):
    f = getattr(np, name)
    if isinstance(f, type):       # dtype, finfo, iinfo
        return f

    def call(*args, **kwargs):
        return _call(f, args, kwargs, f"cupy.{name}")
    call.__name__ = name
    return call


def _to_device(obj, dtype=None, copy=True):
    """``cupy.array`` / ``asarray``: host data (NumPy arrays, lists, scalars) is copied to
    the device; a device array is returned as is when nothing has to change."""
    if type(obj) is ndarray:
        if not copy and (dtype is None or np.dtype(dtype) == obj.dtype):
            return obj
        return ndarray(np.array(obj._a, dtype=dtype, copy=True))
    return ndarray(np.array(_inner(obj), dtype=dtype, copy=True))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0):
    out = _to_device(obj, dtype, copy)
    while out.ndim < ndmin:
        out = out[None]
    return out


def asarray(a, dtype=None, order=None):
    return _to_device(a, dtype, copy=False)


def asnumpy(a, stream=None, order="C", out=None):
    return a.get(out=out) if type(a) is ndarray else np.asarray(a, order=order)


def get_array_module(*args):
    return sys.modules["cupy"] if any(type(a) is ndarray for a in args) else np


def _as_strided(x, shape=None, strides=None):
    return ndarray(np.lib.stride_tricks.as_strided(_unwrap(x, "as_strided"), shape, strides))


def _norm(x, ord=None, axis=None, keepdims=False):
    return _call(np.linalg.norm, (x,), {"ord": ord, "axis": axis, "keepdims": keepdims},
                 "cupy.linalg.norm")


_ATOMIC_ADD_DTYPES = tuple(np.dtype(t) for t in (np.int32, np.float16, np.float32, np.float64,
                                                   np.uint32, np.uint64))


def _scatter_add(a, slices, value):
    """``cupyx.scatter_add``: unbuffered ``a[slices] += value``."""
    if type(a) is not ndarray:
        raise TypeError(f"cupyx.scatter_add: expected a cupy.ndarray, got {type(a)}")
    if a.dtype not in _ATOMIC_ADD_DTYPES:     # CuPy's atomicAdd kernels
        raise TypeError("cupy.add.at only supports int32, float16, float32, float64, uint32, "
                        "uint64, as data type")
    value = _unwrap(value, "cupyx.scatter_add")
    np.add.at(a._a, _index(slices), value)


def _erf(x):
    from engine import backend

    if type(x) is not ndarray:
        _reject("cupyx.scipy.special.erf", x)
    return ndarray(np.asarray(backend._erf_ufunc()(x._a)))


class _Generator:
    """``cupy.random.Generator`` on host memory: ``random(size, dtype)`` draws uniforms in
    [0, 1) as CuPy does, float64 for dtype float64 and float32 cast to ``dtype`` for any
    other, and returns a device array. The stream is not CuPy's (cuRAND's XORWOW), and not
    the engine's host generator's either (PCG64): draws on the device differ from the
    host's for the same seed, as on a real GPU."""

    def __init__(self, bit_generator):
        if not isinstance(bit_generator, np.random.BitGenerator):
            raise TypeError(f"Generator: expected a BitGenerator, got {type(bit_generator)}")
        self.bit_generator = bit_generator
        self._host = np.random.Generator(bit_generator)

    def random(self, size=None, dtype=np.float64, out=None):
        dtype = np.dtype(dtype)
        draw = np.float64 if dtype.char == "d" else np.float32
        y = ndarray(self._host.random(() if size is None else size, dtype=draw)
                    .astype(dtype, copy=False))
        if out is not None:
            out[...] = y
            return out
        return y


def _default_rng(seed=None):
    """``cupy.random.default_rng``: a Generator over a fresh bit generator for ``seed``."""
    if isinstance(seed, _Generator):
        return seed
    return _Generator(np.random.Philox(seed))


def make_modules() -> dict:
    """The fake ``cupy`` and its companions, by their names in ``sys.modules``."""
    cp = _Module("cupy")
    cp.__file__ = __file__
    cp.__version__ = "13.0.0-fake"
    cp.ndarray = ndarray
    for name in _UFUNCS:
        setattr(cp, name, _Ufunc(getattr(np, name)))
    for name in _FUNCTIONS:
        setattr(cp, name, _function(name))
    for name in _TYPES:
        setattr(cp, name, getattr(np, name))
    for name in ("newaxis", "inf", "nan", "pi", "e"):
        setattr(cp, name, getattr(np, name))
    cp.array, cp.asarray, cp.asanyarray = array, asarray, asarray
    cp.asnumpy, cp.get_array_module = asnumpy, get_array_module
    cp.ascontiguousarray = _function("ascontiguousarray")
    cp.lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(as_strided=_as_strided))
    cp.linalg = types.SimpleNamespace(norm=_norm)

    cuda = types.ModuleType("cupy.cuda")
    cuda.Device, cuda.Stream = Device, Stream
    cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: DEVICE_COUNT,
                                         CUDARuntimeError=CUDARuntimeError)
    cuda.get_current_stream = lambda: Stream.null
    cuda.is_available = lambda: True
    cp.cuda = cuda
    cp.is_available = lambda: True

    random = types.ModuleType("cupy.random")
    random.default_rng, random.Generator = _default_rng, _Generator
    cp.random = random

    special = types.ModuleType("cupyx.scipy.special")
    special.erf = _erf
    scipy = types.ModuleType("cupyx.scipy")
    scipy.special = special
    cupyx = types.ModuleType("cupyx")
    cupyx.scatter_add = _scatter_add
    cupyx.scipy = scipy
    return {"cupy": cp, "cupy.cuda": cuda, "cupy.random": random, "cupyx": cupyx,
            "cupyx.scipy": scipy, "cupyx.scipy.special": special}


def install(monkeypatch):
    """Make the fake CuPy what ``engine.backend`` imports, for one test; returns it."""
    from engine import backend

    modules = make_modules()
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_error", None)
    return modules["cupy"]


def simulate_kernels(monkeypatch) -> list:
    """Launch the Numba CUDA kernels of ``engine.kernels.cuda`` on fake arrays under Numba's
    CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` before ``numba.cuda`` is first imported):
    the kernels run on the fake arrays' host memory. A NumPy array among the arguments
    raises (on a GPU Numba would copy it to the device and back on every launch). Returns
    the list the launched kernels are appended to."""
    from engine.kernels import cuda as cuda_kernels

    if not cuda_kernels.SIMULATOR:
        raise RuntimeError("simulate_kernels needs NUMBA_ENABLE_CUDASIM=1 before numba.cuda "
                           "is imported")
    launch = cuda_kernels._launch
    launched = []

    def device_launch(kernel, grid, threads, *args):
        for a in args:
            if isinstance(a, np.ndarray):
                raise TypeError(f"host array {a.shape} {a.dtype} in a device launch")
        launched.append(kernel)
        launch(kernel, grid, threads, *[a._a if is_fake(a) else a for a in args])

    monkeypatch.setattr(cuda_kernels, "_launch", device_launch)
    return launched


def is_fake(x) -> bool:
    """True for a fake device array."""
    return type(x) is ndarray


# ----------------------------------------------------------------------------- pytest plugin
# ``PYTHONPATH=tests python -m pytest -p fake_cupy tests/...`` runs the suite's GPU cases
# (the ``cuda`` value of the ``device`` fixture, and tests marked ``gpu``) on the fake, with
# the fused kernels on their reference formulas; with ``NUMBA_ENABLE_CUDASIM=1`` as well,
# the fused kernels stay on and run in the simulator (slow: keep to a few files).


_GPU_SKIP = "needs CuPy and an NVIDIA GPU"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        item.own_markers = [m for m in item.own_markers
                            if not (m.name == "skip" and m.kwargs.get("reason") == _GPU_SKIP)]


@pytest.fixture(autouse=True)
def _fake_cuda_for_gpu_cases(request, monkeypatch):
    callspec = getattr(request.node, "callspec", None)
    wants = (callspec is not None and callspec.params.get("device") == "cuda") or \
        request.node.get_closest_marker("gpu") is not None
    if not wants:
        yield
        return
    import engine

    install(monkeypatch)
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        simulate_kernels(monkeypatch)
        yield
        return
    with engine.use_fused(False):
        yield
