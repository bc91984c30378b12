"""One framework's side of the comparison, in a process of its own.

    python -m benchmarks.worker xpgrad|pytorch THREADS

Each framework runs alone in its process, as its users run it: no second OpenMP runtime
whose idle threads compete with the timed one, and each library's own defaults (xpgrad
makes idle OpenMP threads sleep, PyTorch leaves its default). The process starts with
:func:`benchmarks.machine.thread_env` and sets the same count at run time, then answers
requests, one JSON object per line on stdin, with one JSON line on stdout:

- ``{"op": "prepare", "kind": "train", "workload": "W1", "device": "cpu", "scale": 1.0,
  "warmup": 3}`` or ``{"op": "prepare", "kind": "overhead", "backward": false, "n": 1000}``
  builds the step (a training step, or a chain of ``n`` adds) and runs its warm-up;
- ``{"op": "time", "runs": 5, "lead": 1}`` runs that step ``lead`` times untimed, then
  ``runs`` times back to back, each synchronized and timed -> ``{"seconds": [...]}``.

The parent alternates ``time`` requests between the frameworks (blocks of runs, see
:func:`benchmarks.run.alternate`), so that a change in the machine's load during a
measurement hits both alike. The first line a worker writes is
its :func:`benchmarks.machine.thread_report`. :class:`Worker` is the parent's handle on
such a process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def prepare(framework: str, request: dict):
    """(step, sync) for a ``prepare`` request, warmed up."""
    from benchmarks import overhead, workloads

    if request["kind"] == "train":
        make = workloads.xpgrad_step if framework == "xpgrad" else workloads.torch_step
        step, sync = make(request["workload"], request["device"], request["scale"])
        warmup = request["warmup"]
    elif request["kind"] == "overhead":
        step, sync = overhead.chain(framework, request["n"], request["backward"]), None
        warmup = 1
    else:
        raise ValueError(f"benchmark worker: unknown kind {request['kind']!r}")
    sync = sync or (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    return step, sync


def time_once(step, sync) -> float:
    start = time.perf_counter()
    step()
    sync()
    return time.perf_counter() - start


def serve(framework: str, threads: int) -> None:
    from benchmarks import machine

    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)                 # whatever else prints goes to stderr, not into replies
    if framework == "xpgrad":
        # Numba and the CPU kernels load on the first fused op; load them now, so that
        # their threads are set and reported like every other pool's.
        import engine.kernels.cpu  # noqa: F401
    else:
        import torch  # noqa: F401
    machine.set_threads(threads)
    print(json.dumps(machine.thread_report()), file=replies, flush=True)
    current = None
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "prepare":
                current = prepare(framework, request)
                reply = {}
            elif request["op"] == "time" and current is not None:
                for _ in range(request.get("lead", 0)):
                    time_once(*current)
                reply = {"seconds": [time_once(*current)
                                     for _ in range(request.get("runs", 1))]}
            else:
                raise ValueError(f"benchmark worker: unknown op {request['op']!r}, or "
                                 "'time' before 'prepare'")
        except Exception:
            reply = {"error": traceback.format_exc()}
        print(json.dumps(reply), file=replies, flush=True)


class Worker:
    """A worker process for ``framework`` with ``threads`` threads in every pool.

    ``omp_wait_policy`` None leaves ``OMP_WAIT_POLICY`` to each framework's default."""

    def __init__(self, framework: str, threads: int, omp_wait_policy: str | None = None):
        from benchmarks import machine

        env = dict(os.environ, **machine.thread_env(threads))
        env.pop("OMP_WAIT_POLICY", None)
        if omp_wait_policy:
            env["OMP_WAIT_POLICY"] = omp_wait_policy
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.framework = framework
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", framework, str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self._threads = None

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker ({self.framework}) exited with code "
                               f"{self.proc.wait()}; its error is printed above")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"benchmark worker ({self.framework}):\n{reply['error']}")
        return reply

    def threads(self) -> dict:
        """The worker's thread report (waits until it has started)."""
        if self._threads is None:
            self._threads = self._read()
        return self._threads

    def request(self, **request) -> dict:
        self.threads()
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def prepare(self, **request) -> None:
        self.request(op="prepare", **request)

    def time(self, runs: int = 1, lead: int = 0) -> list[float]:
        """Seconds of each of ``runs`` back-to-back runs of the prepared step, after
        ``lead`` untimed ones."""
        return self.request(op="time", runs=runs, lead=lead)["seconds"]

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
