"""The device array of the fake CuPy (see tests/fake_cupy.py, which builds the modules
around it): ``cupy._fake.ndarray``, a wrapper around a NumPy array that is as strict as CuPy
where host and device arrays get mixed up; ``cupy.cuda``'s ``Device`` and ``Stream``; and
the wrapping of NumPy's results (fake arrays out, an input's own array back as that input).
"""

from __future__ import annotations

import weakref

import numpy as np

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


# Ufuncs of the cupy namespace in CuPy 13 (checked against its reference documentation):
# ``numpy.<ufunc>(x)`` works on a fake array for these, as on a CuPy array.
_UFUNCS = set("""add subtract multiply divide true_divide floor_divide power float_power
negative positive remainder mod fmod exp expm1 exp2 log log1p log2 log10 sqrt cbrt square
reciprocal abs absolute fabs sign sin cos tan arcsin arccos arctan arctan2 hypot sinh cosh
tanh arcsinh arccosh arctanh floor ceil trunc rint maximum minimum fmax fmin equal
not_equal greater greater_equal less less_equal logical_and logical_or logical_xor
logical_not isfinite isinf isnan signbit copysign nextafter ldexp frexp bitwise_and
bitwise_or bitwise_xor bitwise_not invert left_shift right_shift heaviside matmul
""".split())
