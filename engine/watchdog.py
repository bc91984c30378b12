"""A watchdog for MPI collectives: a rank that waits in one longer than a timeout aborts
every rank, naming the ranks that did not arrive and where they are instead.

A collective returns only once every rank has called it; a rank that skips one (a branch
taken on one rank only, one batch more on one shard) leaves the others waiting forever.
Each rank runs a daemon thread beside its program. The program marks each collective it
is in (``with watchdog.collective("barrier"): ...``), numbered in call order, which is
the same on every rank of a correct program. The thread

- answers other ranks' watchdogs with where its rank is: inside collective #k, or
  between collectives, #k being the last one it finished;
- once its own rank has waited in collective #k longer than ``timeout``, asks every
  other rank where it is, waits a moment for the answers, prints the ranks that are
  neither inside #k nor past it, with where they are, and aborts all ranks.

Questions and answers travel on a duplicate of the communicator, apart from the
program's messages, and only after a timeout: a collective that completes in time costs
two attribute writes. The thread makes MPI calls while the program is inside one, which
needs MPI_THREAD_MULTIPLE (the level mpi4py asks for by default).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
from datetime import timedelta

ENV_VAR = "XPGRAD_COLLECTIVE_TIMEOUT"
DEFAULT_TIMEOUT = 600.0
_QUESTION, _ANSWER = 1, 2


def collective_timeout(timeout: float | timedelta | None = None) -> float:
    """Seconds a collective may wait: ``timeout`` if given, else ``$XPGRAD_COLLECTIVE_TIMEOUT``,
    else 600 (PyTorch's default for NCCL). ``math.inf`` turns the watchdog off."""
    source = "timeout"
    if timeout is None:
        text = os.environ.get(ENV_VAR)
        if text is None:
            return DEFAULT_TIMEOUT
        try:
            timeout = float(text)
        except ValueError:
            raise ValueError(f"{ENV_VAR}={text!r} is not a number of seconds") from None
        source = ENV_VAR
    if isinstance(timeout, timedelta):
        timeout = timeout.total_seconds()
    if not timeout > 0:
        raise ValueError(f"distributed.init: {source} must be a positive number of seconds "
                         f"(math.inf for none), got {timeout!r}")
    return float(timeout)


class CollectiveWatchdog:
    """Watches this rank's collectives on ``comm``; aborts all ranks after ``timeout`` s."""

    def __init__(self, comm, timeout: float) -> None:
        from mpi4py import MPI

        if MPI.Query_thread() < MPI.THREAD_MULTIPLE:
            raise RuntimeError("distributed.init: the collective timeout needs MPI initialized "
                               "with MPI_THREAD_MULTIPLE (mpi4py's default); pass "
                               "timeout=math.inf to do without it")
        self._any_source = MPI.ANY_SOURCE
        self._status = MPI.Status()
        self.world = comm
        self.comm = comm.Dup()
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.timeout = timeout
        self.current = None         # (number, name, start) while inside a collective
        self.finished = (0, None)   # (number, name) of the last collective finished
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collective-watchdog",
                                        daemon=True)
        self._thread.start()
        atexit.register(self.stop)  # before MPI is finalized: no MPI call may follow

    @contextlib.contextmanager
    def collective(self, name: str):
        """Mark the block as collective ``name``; nested blocks count as their outer one."""
        if self.current is not None:
            yield
            return
        number = self.finished[0] + 1
        self.current = (number, name, time.monotonic())
        try:
            yield
        finally:
            self.finished = (number, name)
            self.current = None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.timeout / 10)):
            self._answer_questions()
            current = self.current
            if current is not None and time.monotonic() - current[2] > self.timeout:
                self._abort(current)

    def _where(self):
        current = self.current
        return (None if current is None else current[:2]), self.finished

    def _answer_questions(self) -> None:
        while self.comm.iprobe(source=self._any_source, tag=_QUESTION, status=self._status):
            asker = self._status.Get_source()
            self.comm.recv(source=asker, tag=_QUESTION)
            self.comm.send(self._where(), dest=asker, tag=_ANSWER)

    def _abort(self, current) -> None:
        """Ask every rank where it is, print who did not arrive, abort all ranks."""
        number, name, start = current
        others = [r for r in range(self.size) if r != self.rank]
        self._questions = [self.comm.isend(number, dest=r, tag=_QUESTION) for r in others]
        answers: dict = {}
        deadline = time.monotonic() + 2.0
        while len(answers) < len(others) and time.monotonic() < deadline:
            self._answer_questions()        # the other waiting ranks are asking too
            if self.comm.iprobe(source=self._any_source, tag=_ANSWER, status=self._status):
                rank = self._status.Get_source()
                answers[rank] = self.comm.recv(source=rank, tag=_ANSWER)
            else:
                time.sleep(0.01)
        absent = {r: _absence(answers.get(r), number, name) for r in others}
        absent = {r: why for r, why in absent.items() if why is not None}
        if absent:
            who = (f"did not arrive: rank{'s' * (len(absent) > 1)} "
                   f"{', '.join(map(str, absent))}; "
                   + "; ".join(f"rank {r} {why}" for r, why in absent.items()))
        else:
            who = "every rank is inside it: the transfer itself is stalled"
        sys.stderr.write(
            f"[rank {self.rank}] distributed: {name} (collective #{number}) waited "
            f"{time.monotonic() - start:.1f} s, longer than the timeout of {self.timeout:g} s; "
            f"{who} -- aborting all {self.size} ranks\n")
        sys.stderr.flush()
        self.world.Abort(1)


def _absence(answer, number: int, name: str) -> str | None:
    """Where a rank is instead of inside collective ``number``, or None if it arrived."""
    if answer is None:
        return "did not answer (its process is blocked outside Python, or has exited)"
    current, (finished, last) = answer
    if current == (number, name) or finished >= number:
        return None
    if current is not None:
        return f"is waiting in {current[1]} (collective #{current[0]}) instead"
    if finished == 0:
        return "has not called any collective yet"
    return f"is not in a collective (the last it finished: {last}, #{finished})"

