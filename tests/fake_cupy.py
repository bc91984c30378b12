"""A fake CuPy on NumPy: xpgrad's CUDA code path, run and checked on a machine without a GPU.

:func:`install` (given pytest's ``monkeypatch``) puts modules named ``cupy``,
``cupy.cuda``, ``cupy.random``, ``cupyx``, ``cupyx.scipy`` and ``cupyx.scipy.special`` into
``sys.modules`` and resets ``engine.backend`` so that its lazy ``import cupy`` finds them:
from then on ``"cuda"`` / ``"cuda:0"`` are devices, ``x.to("cuda")`` makes fake device
arrays, and every engine path that branches on the device takes its CUDA branch.

A fake device array is a ``cupy._fake.ndarray``: a wrapper around a NumPy array (so the
numbers are NumPy's, and equal the CPU path's) that is as strict as CuPy where host and
device code get mixed up, and a little stricter where xpgrad's own rules are:

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

import sys
import types
import weakref

import numpy as np

NAMES_USED: set = set()
# id(NumPy array) -> the live fake array wrapping it, so that ``.base`` is one object
_WRAPPERS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
SYNC_CALLS = [0]     # how often a stream or device was synchronized
DEVICE_COUNT = 1

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
             "construct a NumPy array explicitly.")


class CUDARuntimeError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- wrapping
def _reject(op: str, x):
    raise TypeError(f"{op}: Unsupported type {type(x)} (shape {getattr(x, 'shape', None)}): "
                    "a NumPy array met a CuPy array; move it with backend.to_device")


def _unwrap(x, op: str):
    """Inner NumPy arrays of fake arrays (in lists, tuples and dicts too); NumPy arrays
    raise as CuPy's kernels do."""
    if type(x) is ndarray:
        return x._a
    if isinstance(x, np.ndarray):
        _reject(op, x)
    if type(x) in (list, tuple):
        return type(x)(_unwrap(v, op) for v in x)
    if type(x) is dict:
        return {k: _unwrap(v, op) for k, v in x.items()}
    return x


def _fakes(args, found):
    for a in args:
        if type(a) is ndarray:
            found[id(a._a)] = a
        elif type(a) in (list, tuple):
            _fakes(a, found)
        elif type(a) is dict:
            _fakes(a.values(), found)
    return found


def _wrap(r, originals=None):
    """Fake arrays for NumPy results; a result that is an input's own array comes back
    as that input (CuPy returns the same object for ``asarray(x)``, ``astype(copy=False)``
    and ``out=``), so identity checks behave as on a GPU."""
    if isinstance(r, np.ndarray):
        if originals and id(r) in originals and originals[id(r)]._a is r:
            return originals[id(r)]
        return ndarray(r)
    if isinstance(r, np.generic):
        return ndarray(np.asarray(r))
    if type(r) in (list, tuple):
        return type(r)(_wrap(v, originals) for v in r)
    return r


def _call(f, args, kwargs, op: str, owner=None):
    res = f(*_unwrap(args, op), **_unwrap(kwargs, op))
    return _wrap(res, _fakes((owner, args, kwargs), {}))


def _inner(x):
    """Fake arrays (in lists and tuples too) replaced by their NumPy arrays, nothing
    rejected: what CuPy's conversions of host data accept."""
    if type(x) is ndarray:
        return x._a
    if type(x) in (list, tuple):
        return type(x)(_inner(v) for v in x)
    return x


def _index(index):
    """An index for the inner array: fake arrays unwrapped; NumPy arrays and lists are
    accepted, CuPy copies them to the device."""
    if type(index) is tuple:
        return tuple(_index(k) for k in index)
    if type(index) is ndarray:
        return index._a
    return index


# ----------------------------------------------------------------------------- cuda
class Device:
    """``cupy.cuda.Device``: a context manager selecting a GPU (only device 0 exists)."""

    def __init__(self, device=None):
        i = 0 if device is None else int(device)
        if not 0 <= i < DEVICE_COUNT:
            raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
        self.id = i

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def use(self):
        return None

    def synchronize(self):
        SYNC_CALLS[0] += 1

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


class _Stream:
    ptr = 0

    def synchronize(self):
        SYNC_CALLS[0] += 1


class Stream:
    null = _Stream()


class _MemoryPointer:
    def __init__(self, a):
        self.ptr = a.ctypes.data


class _Flags:
    def __init__(self, a):
        self.c_contiguous = bool(a.flags.c_contiguous)
        self.f_contiguous = bool(a.flags.f_contiguous)
        self.owndata = bool(a.flags.owndata)


# ----------------------------------------------------------------------------- ndarray
class ndarray:
    """A device array of the fake CuPy (see the module docstring)."""

    __module__ = "cupy._fake"
    __slots__ = ("_a", "_base", "__weakref__")
    __hash__ = None

    def __init__(self, a):
        if not isinstance(a, np.ndarray) or type(a) is not np.ndarray:
            raise TypeError(f"fake cupy.ndarray wraps a NumPy array, got {type(a)}")
        self._a = a
        self._base = None
        _WRAPPERS[id(a)] = self

    # ------------------------------------------------------------ host <-> device
    def get(self, stream=None, order="C", out=None, blocking=True):
        """A host copy (``cupy.ndarray.get``)."""
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"set: expected a numpy.ndarray, got {type(arr)}")
        self._a[...] = arr

    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT)

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} was called on a CuPy array; xpgrad code "
                        "takes its functions from backend.array_module(x)")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        name = ufunc.__name__
        if method != "__call__":
            raise TypeError(f"numpy.{name}.{method} on a CuPy array: CuPy 13 has no "
                            f"ufunc.{method} for it (use cupyx.scatter_add / xp functions)")
        if name not in _UFUNCS:
            return NotImplemented
        return _call(ufunc, inputs, kwargs, name)

    # ------------------------------------------------------------ attributes
    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    ndim = property(lambda self: self._a.ndim)
    dtype = property(lambda self: self._a.dtype)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    T = property(lambda self: _wrap(self._a.T))
    real = property(lambda self: _wrap(self._a.real))
    imag = property(lambda self: _wrap(self._a.imag))
    flags = property(lambda self: _Flags(self._a))
    data = property(lambda self: _MemoryPointer(self._a))
    device = property(lambda self: Device(0))

    @property
    def base(self):
        """The device array whose memory this view uses: the same object every time, the
        one the caller holds if it is alive, as in CuPy (version counters key on it)."""
        b = self._a.base
        if type(b) is not np.ndarray:
            return None
        if self._base is None or self._base._a is not b:
            live = _WRAPPERS.get(id(b))
            self._base = live if live is not None and live._a is b else ndarray(b)
        return self._base

    # ------------------------------------------------------------ Python protocol
    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self._a.shape[0]))

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __complex__(self):
        return complex(self._a)

    def __repr__(self):
        return repr(self._a)

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        return format(self._a, spec)

    def __copy__(self):
        return ndarray(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray(self._a.copy())

    def __getitem__(self, index):
        return _wrap(self._a[_index(index)])

    def __setitem__(self, index, value):
        if type(value) is ndarray:
            value = value._a
        elif isinstance(value, np.ndarray) and value.ndim:
            _reject("__setitem__", value)
        self._a[_index(index)] = value

    # ------------------------------------------------------------ unary operators
    def __neg__(self):
        return _wrap(-self._a)

    def __pos__(self):
        return _wrap(+self._a)

    def __abs__(self):
        return _wrap(abs(self._a))

    def __invert__(self):
        return _wrap(~self._a)


def _binary(ufunc, reflected=False):
    def op(self, other):
        a, b = (other, self) if reflected else (self, other)
        return _call(ufunc, (a, b), {}, ufunc.__name__)
    return op


def _inplace(ufunc):
    def op(self, other):
        _call(ufunc, (self, other), {"out": self}, ufunc.__name__)
        return self
    return op


for _name, _uf in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                   ("truediv", np.true_divide), ("floordiv", np.floor_divide),
                   ("mod", np.remainder), ("pow", np.power), ("matmul", np.matmul),
                   ("and", np.bitwise_and), ("or", np.bitwise_or), ("xor", np.bitwise_xor),
                   ("lshift", np.left_shift), ("rshift", np.right_shift)]:
    setattr(ndarray, f"__{_name}__", _binary(_uf))
    setattr(ndarray, f"__r{_name}__", _binary(_uf, reflected=True))
    setattr(ndarray, f"__i{_name}__", _inplace(_uf))
for _name, _uf in [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                   ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal)]:
    setattr(ndarray, f"__{_name}__", _binary(_uf))


def _method(name):
    def method(self, *args, **kwargs):
        return _call(getattr(self._a, name), args, kwargs, f"ndarray.{name}", owner=self)
    method.__name__ = name
    return method


def _host_method(name):
    def method(self, *args, **kwargs):
        return getattr(self._a, name)(*args, **kwargs)
    method.__name__ = name
    return method


# Methods of cupy.ndarray (CuPy 13) that return arrays, and those that return host values.
_METHODS = """all any argmax argmin argpartition argsort astype choose clip compress conj
conjugate copy cumprod cumsum diagonal dot fill flatten max mean min nonzero partition
prod ptp put ravel repeat reshape round sort squeeze std sum swapaxes take trace transpose
var view""".split()
for _name in _METHODS:
    setattr(ndarray, _name, _method(_name))
for _name in ("item", "tolist", "tobytes"):
    setattr(ndarray, _name, _host_method(_name))


# ----------------------------------------------------------------------------- functions
# Ufuncs and functions of the cupy namespace in CuPy 13 (checked against its reference
# documentation); anything else is absent from the fake module, as from CuPy.
_UFUNCS = set("""add subtract multiply divide true_divide floor_divide power float_power
negative positive remainder mod fmod exp expm1 exp2 log log1p log2 log10 sqrt cbrt square
reciprocal abs absolute fabs sign sin cos tan arcsin arccos arctan arctan2 hypot sinh cosh
tanh arcsinh arccosh arctanh floor ceil trunc rint maximum minimum fmax fmin equal
not_equal greater greater_equal less less_equal logical_and logical_or logical_xor
logical_not isfinite isinf isnan signbit copysign nextafter ldexp frexp bitwise_and
bitwise_or bitwise_xor bitwise_not invert left_shift right_shift heaviside matmul
""".split())
_FUNCTIONS = """empty empty_like zeros zeros_like ones ones_like full full_like eye identity
arange linspace copy tri tril triu diag diagflat meshgrid reshape ravel moveaxis rollaxis
swapaxes transpose atleast_1d atleast_2d atleast_3d broadcast_arrays broadcast_to
expand_dims squeeze concatenate stack hstack vstack dstack column_stack split array_split
repeat tile unique flip fliplr flipud roll pad where take take_along_axis ix_ nonzero
flatnonzero argwhere ravel_multi_index unravel_index indices choose compress diagonal
select sum prod mean var std nanmean nansum amax amin max min argmax argmin cumsum cumprod
diff clip around dot vdot inner outer einsum tensordot trace all any
count_nonzero isclose allclose array_equal sort argsort searchsorted bincount
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
import os  # noqa: E402

import pytest  # noqa: E402

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
