"""Devices: the one module that imports CuPy.

A device is ``"cpu"`` (NumPy arrays) or ``"cuda"`` / ``"cuda:N"`` (CuPy arrays on GPU N).
Engine code never calls ``numpy`` directly on tensor data: it asks for the array module of
the data with :func:`array_module` and uses that, so one code path serves both devices.
CuPy is imported lazily, the first time a CUDA device is asked for, so the CPU path never
imports it.

The host's memory: importing this module (so, the engine) tells glibc's allocator to keep
freed blocks for reuse (:func:`keep_freed_memory`), so the arrays of each training step
do not fault in fresh pages.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

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


def device_count() -> int:
    """The number of GPUs CuPy sees (0 without CuPy or a GPU)."""
    if not cuda_is_available():
        return 0
    return cupy_module().cuda.runtime.getDeviceCount()


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


# ----------------------------------------------------------------------------- host memory
# Freed blocks are kept for the next step instead of being given back to the operating
# system. A training step allocates the same arrays every time (activations, gradients,
# im2col columns: from a few hundred KB to tens of MB). With glibc's defaults a block above
# 128 KB is mapped fresh from the kernel and unmapped when freed (the threshold then adapts
# upwards, but freed heap memory above twice it is trimmed away again), so each step
# touches new pages: one page fault per 4 KB, zeroed by the kernel. Measured on the CNN
# workload: 4,100 page faults and 16 ms of system time per step, on the MLP workload 1,300
# faults and 1.7 ms of a 5 ms step; PyTorch's steps take 20 faults on the MLP.
#
# So on Linux with glibc, importing the engine calls ``mallopt`` once: blocks up to 32 MB
# come from the heap (``M_MMAP_THRESHOLD``) and up to 512 MB of freed heap stay mapped
# (``M_TRIM_THRESHOLD``), after which the steps above take no page faults. The cost is that
# the process's resident size stays near its peak. A user who sets glibc's own
# ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` keeps their setting.
M_TRIM_THRESHOLD = -1          # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20      # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 512 << 20

USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory() -> bool:
    """Apply the thresholds above; False, changing nothing, off glibc or when the user set
    glibc's own thresholds."""
    if not sys.platform.startswith("linux") or any(v in os.environ for v in USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or getattr(libc, "gnu_get_libc_version", None) is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


HOST_MEMORY_KEPT = keep_freed_memory()
