"""Threads on the CPU: the OpenMP wait policy, BLAS's thread count, and one worker pool.

Three kinds of threads run xpgrad's CPU work, and this module is where each is governed:

- Numba's parallel loops (the fused kernels) run on OpenMP threads. With the default wait
  policy idle OpenMP threads spin, and on a machine with more runnable threads than cores
  (BLAS's threads, PyTorch's pool, other processes) a spinning pool turns a 20 µs kernel
  into 20 ms. So idle threads sleep: ``OMP_WAIT_POLICY=PASSIVE`` unless the user set it
  (set when this module is imported; the OpenMP runtime reads it when its pool starts).
- NumPy's BLAS (OpenBLAS in NumPy's wheels) multiplies the matrices. Its thread count is
  set through OpenBLAS's own C function, found once with ``ctypes``: about 0.3 µs a call,
  and 3 µs for a :func:`blas_threads` block (lock and bookkeeping included), cheap enough
  to choose per matrix product. threadpoolctl's ``threadpool_limits`` block takes about
  170 µs, as it looks up the loaded libraries each time. With another BLAS the count
  cannot be set here, and the functions say so.
- One pool of worker threads (:func:`run_split`) runs work that the kernels split among
  threads themselves (attention heads), each worker calling BLAS on one thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _openblas_functions():
    """(get, set) of the thread count of NumPy's OpenBLAS, or () when not found."""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)       # already loaded by NumPy: the same library
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""),
                               ("openblas", "64_"), ("openblas", "")):
            get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                return get, put
    return ()


class _Blas:
    """The BLAS thread count: a base value and the limits held by :func:`blas_threads`
    (the count in force is the smallest limit held, or the base when none is)."""

    lock = threading.Lock()
    functions = None        # (get, set) once looked up; () when NumPy's BLAS is not OpenBLAS
    base = None             # the count when no limit is held
    limits: list = []

    @classmethod
    def calls(cls):
        if cls.functions is None:
            cls.functions = _openblas_functions()
        return cls.functions

    @classmethod
    def apply(cls) -> None:
        """Set the count in force (the lock held)."""
        cls.functions[1](min(cls.limits) if cls.limits else cls.base)


def get_blas_threads() -> int | None:
    """Threads NumPy's BLAS uses now, or None when it is not an OpenBLAS found here."""
    calls = _Blas.calls()
    return calls[0]() if calls else None


def set_blas_threads(n: int) -> bool:
    """Let NumPy's BLAS use ``n`` threads from now on (process-wide; limits held by
    :func:`blas_threads` still apply while held). False when the BLAS is not reachable."""
    if n < 1:
        raise ValueError(f"set_blas_threads: need at least 1 thread, got {n}")
    with _Blas.lock:
        if not _Blas.calls():
            return False
        _Blas.base = int(n)
        _Blas.apply()
    return True


@contextlib.contextmanager
def blas_threads(n: int):
    """Hold NumPy's BLAS to at most ``n`` threads inside the block (nested and from several
    threads: the smallest limit held is in force). Yields False, doing nothing, when the
    BLAS cannot be reached."""
    with _Blas.lock:
        held = bool(_Blas.calls())
        if held:
            if not _Blas.limits:
                _Blas.base = _Blas.functions[0]()
            _Blas.limits.append(int(n))
            _Blas.apply()
    try:
        yield held
    finally:
        if held:
            with _Blas.lock:
                _Blas.limits.remove(int(n))
                _Blas.apply()


_POOL = None        # (pid, workers, ThreadPoolExecutor)


def run_split(work, n: int, threads: int) -> bool:
    """Run ``work(lo, hi)`` over ``threads`` consecutive ranges of ``range(n)``: the calling
    thread takes the first range, the shared pool the others, BLAS held to one thread
    meanwhile (a BLAS pool under each worker would oversubscribe the cores). Returns False,
    having run nothing, when BLAS cannot be held: the caller then runs the work itself."""
    global _POOL
    with blas_threads(1) as held:
        if not held:
            return False
        if _POOL is None or _POOL[0] != os.getpid() or _POOL[1] < threads - 1:
            # a new pool after a fork too: the parent's worker threads do not exist here
            _POOL = (os.getpid(), threads - 1,
                     ThreadPoolExecutor(threads - 1, thread_name_prefix="xpgrad-worker"))
        bounds = [n * t // threads for t in range(threads + 1)]
        futures = [_POOL[2].submit(work, bounds[t], bounds[t + 1]) for t in range(1, threads)]
        try:
            work(bounds[0], bounds[1])
        finally:
            wait(futures)             # BLAS threads are restored only once all are done
        for f in futures:
            f.result()
    return True


def pool_started() -> bool:
    """True once :func:`run_split` has started its worker threads in this process."""
    return _POOL is not None and _POOL[0] == os.getpid()
