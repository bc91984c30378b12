"""The conditions a benchmark runs under: one thread count for every library, the load
average, and a CPU hog that makes the machine busy.

- :func:`thread_env` gives the environment a fresh process needs so that OpenMP, OpenBLAS,
  MKL and Numba start with ``n`` threads; :func:`set_threads` applies the same count at
  run time to whatever is loaded (NumPy's BLAS and OpenMP through threadpoolctl, Numba,
  PyTorch's intra-op and inter-op pools) and :func:`thread_report` says what each library
  actually uses, so the output records facts rather than requests.
- :class:`CpuHog` starts busy-loop processes (plain ``while True: pass``, no CPU affinity:
  the scheduler may put them on any core, as it would other people's work) and stops them
  on exit, with the CPU time they got.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), the default thread count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def thread_env(n: int) -> dict[str, str]:
    """Environment variables that give a new process ``n`` threads in every pool."""
    return {name: str(n) for name in THREAD_VARIABLES}


def load_average() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages, or None where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _threadpool_counts(api: str) -> list[int] | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == api]


def thread_report() -> dict:
    """The thread count each loaded library uses now (absent: library not loaded)."""
    report = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
              "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
              "blas": _threadpool_counts("blas"), "openmp": _threadpool_counts("openmp")}
    if "numba" in sys.modules:
        report["numba"] = sys.modules["numba"].get_num_threads()
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        report["torch_intra_op"] = torch.get_num_threads()
        report["torch_inter_op"] = torch.get_num_interop_threads()
    return report


def set_threads(n: int):
    """Give every loaded library ``n`` threads; returns threadpoolctl's limiter (its
    ``restore_original_limits()`` undoes the BLAS/OpenMP part) or None without it.

    Numba cannot exceed the ``NUMBA_NUM_THREADS`` it started with, and PyTorch's inter-op
    pool is fixed once used: both keep what they have then, which :func:`thread_report`
    shows."""
    limiter = None
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=n)
    if "numba" in sys.modules:
        numba = sys.modules["numba"]
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(n)
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(n)
    return limiter


@contextlib.contextmanager
def threads(n: int):
    """:func:`set_threads` for the duration of a block, in this process; yields the
    :func:`thread_report` taken inside."""
    numba = sys.modules.get("numba")
    torch = sys.modules.get("torch")
    before_numba = numba.get_num_threads() if numba else None
    before_torch = torch.get_num_threads() if torch else None
    limiter = set_threads(n)
    try:
        yield thread_report()
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
        if numba:
            numba.set_num_threads(before_numba)
        if torch:
            torch.set_num_threads(before_torch)


class CpuHog:
    """``processes`` busy-loop processes for the duration of a ``with`` block.

    ``settle`` seconds pass after they start, so the scheduler already shares the cores
    when the block begins. On exit they are killed and reaped; ``cpu_seconds`` is the CPU
    time they got and ``seconds`` how long they ran, so ``cpu_seconds / seconds`` is the
    number of cores they kept busy."""

    def __init__(self, processes: int = 1, settle: float = 0.5):
        self.processes, self.settle = processes, settle
        self.pids: list[int] = []
        self.cpu_seconds = self.seconds = None

    def __enter__(self) -> CpuHog:
        self._procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                       for _ in range(self.processes)]
        self.pids = [p.pid for p in self._procs]
        self._start = time.perf_counter()
        time.sleep(self.settle)
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start
        self.cpu_seconds = 0.0
        for proc in self._procs:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.cpu_seconds += usage.ru_utime + usage.ru_stime

    def record(self) -> dict:
        """What the hog did, for the results (after the block)."""
        return {"hog_processes": self.processes, "hog_seconds": round(self.seconds, 2),
                "hog_cpu_seconds": round(self.cpu_seconds, 2),
                "hog_cores": round(self.cpu_seconds / self.seconds, 2)}
