"""Devices: the one module that imports CuPy.

A device is ``"cpu"`` (NumPy arrays) or ``"cuda"`` / ``"cuda:N"`` (CuPy arrays on GPU N).
Engine code never calls ``numpy`` directly on tensor data: it asks for the array module of
the data with :func:`array_module` and uses that, so one code path serves both devices.
CuPy is imported lazily, the first time a CUDA device is asked for, so the CPU path never
imports it.
"""

from __future__ import annotations

import functools

import numpy as np

_cupy = None          # the cupy module once imported successfully
_cupy_error = None    # why it could not be used, as a string


def _load_cupy():
    """Import CuPy on first use; remember the failure reason if it cannot run here."""
    global _cupy, _cupy_error
    if _cupy is not None or _cupy_error is not None:
        return _cupy
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device is visible")
        _cupy = cupy
    except Exception as exc:  # ImportError, CUDARuntimeError, missing driver ...
        _cupy_error = f"{type(exc).__name__}: {exc}"
    return _cupy


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    return _load_cupy() is not None


def cupy_module():
    """The cupy module; raises a clear error when CUDA cannot be used here."""
    cp = _load_cupy()
    if cp is None:
        raise RuntimeError(
            "device 'cuda' was requested but CUDA is not available "
            f"({_cupy_error}); install the GPU extra (pip install 'xpgrad[gpu]') "
            "on a machine with an NVIDIA GPU, or use device='cpu'"
        )
    return cp


class device(str):
    """A device name, PyTorch's ``torch.device``: ``device("cpu")``, ``device("cuda:0")``,
    ``device("cuda", 1)``; ``.type`` is 'cpu' or 'cuda', ``.index`` the GPU number (None
    when not given). It is the string itself, so ``x.device == "cpu"`` holds and it goes
    wherever a device string does.
    """

    def __new__(cls, type_or_name, index: int | None = None):
        name = str(type_or_name)
        if index is not None:
            if ":" in name:
                raise ValueError(f"device: type {name!r} already names an index; "
                                 f"got index={index} as well")
            name = f"{name}:{int(index)}"
        kind, _, number = name.partition(":")
        if kind not in ("cpu", "cuda") or (number and not number.isdigit()) or \
                (kind == "cpu" and number not in ("", "0")):
            raise ValueError(f"unknown device {type_or_name!r}: expected 'cpu', 'cuda' or "
                             "'cuda:N'")
        return super().__new__(cls, "cpu" if kind == "cpu" else name)

    @property
    def type(self) -> str:
        return self.partition(":")[0]

    @property
    def index(self) -> int | None:
        number = self.partition(":")[2]
        return int(number) if number else None

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __reduce__(self):
        return device, (str(self),)


@functools.lru_cache(maxsize=64)
def device_object(name: str) -> device:
    """The :class:`device` of a normalized device name (one object per name)."""
    return device(name)


@functools.lru_cache(maxsize=64)
def parse_device(device) -> str:
    """Normalize ``'cpu' | 'cuda' | 'cuda:N' | None`` to ``'cpu'`` or ``'cuda:N'``."""
    if device is None:
        return "cpu"
    name = str(device)
    if name == "cpu":
        return "cpu"
    if name == "cuda":
        return "cuda:0"
    if name.startswith("cuda:") and name[5:].isdigit():
        return name
    raise ValueError(f"unknown device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")


def is_cuda_array(x) -> bool:
    """True for a CuPy ndarray (checked without importing CuPy)."""
    return type(x).__module__.startswith("cupy")


def array_module(x):
    """The array module (numpy or cupy) that owns ``x``."""
    if type(x).__module__.startswith("cupy"):
        return _cupy if _cupy is not None else cupy_module()
    return np


def device_of(x) -> str:
    """The device name of an array: ``'cpu'`` or ``'cuda:N'``."""
    if is_cuda_array(x):
        return f"cuda:{x.device.id}"
    return "cpu"


def module_for(device: str):
    """The array module serving a (normalized) device name."""
    return np if device == "cpu" else cupy_module()


def to_device(x, device: str):
    """Copy array ``x`` to ``device`` (no copy if it is already there)."""
    device = parse_device(device)
    src = device_of(x)
    if src == device:
        return x
    if device == "cpu":
        return x.get()
    cp = cupy_module()
    with cp.cuda.Device(int(device[5:])):
        return cp.asarray(x)


def to_numpy(x) -> np.ndarray:
    """A host (NumPy) copy-or-view of any array."""
    return x.get() if is_cuda_array(x) else np.asarray(x)


def synchronize(device: str = "cuda:0") -> None:
    """Wait for all queued GPU work on ``device`` (no-op on the CPU)."""
    device = parse_device(device)
    if device != "cpu":
        cp = cupy_module()
        with cp.cuda.Device(int(device[5:])):
            cp.cuda.Stream.null.synchronize()


@functools.lru_cache(maxsize=None)
def _erf_ufunc():
    import math

    import numba

    @numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
    def erf(x):
        return math.erf(x)

    return erf


def erf(x):
    """Elementwise error function on either device (NumPy has none)."""
    if is_cuda_array(x):
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(x)
    return _erf_ufunc()(x)


def add_at(target, index, values) -> None:
    """Unbuffered ``target[index] += values`` (repeated indices accumulate)."""
    if is_cuda_array(target):
        import cupyx

        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


def nccl_unique_id():
    """A fresh NCCL unique id (rank 0 makes it; the others receive it over MPI), or None
    when CuPy has no NCCL (then every rank reduces through host buffers)."""
    try:
        from cupy.cuda import nccl

        return nccl.get_unique_id()
    except Exception:  # ImportError without the NCCL library, or a failing runtime
        return None


def nccl_communicator(world_size: int, unique_id, rank: int):
    """An NCCL communicator over CuPy's bindings, or None when NCCL is unavailable."""
    if unique_id is None:
        return None
    try:
        from cupy.cuda import nccl

        return nccl.NcclCommunicator(world_size, unique_id, rank)
    except Exception:
        return None


def nccl_allreduce_sum(comm, array) -> None:
    """In-place sum of a CuPy array across the NCCL communicator's ranks."""
    from cupy.cuda import nccl

    kinds = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}
    stream = _cupy.cuda.get_current_stream().ptr
    comm.allReduce(array.data.ptr, array.data.ptr, array.size, kinds[array.dtype.name],
                   nccl.NCCL_SUM, stream)
