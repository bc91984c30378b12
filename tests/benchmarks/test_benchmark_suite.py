"""The benchmark command in its tiny smoke mode: both frameworks on the same threads, a
quiet and a busy phase, and the outputs it writes."""

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from benchmarks import machine, report, run, workloads
from benchmarks.worker import Worker

HAS_TORCH = importlib.util.find_spec("torch") is not None
README = Path(__file__).resolve().parents[2] / "README.md"


def test_suite_smoke_mode_same_threads_quiet_and_busy(tmp_path):
    """One thread (not this machine's default) reaches every pool of both workers; both
    phases time every workload in both frameworks; the outputs agree with each other."""
    results = run.main(["--smoke", "--threads", "1", "--out", str(tmp_path)])
    for name in ("results.json", "results.md", "results.png", "comparison.md"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    frameworks = {"xpgrad", "pytorch"} if HAS_TORCH else {"xpgrad"}

    threads = saved["threads"]
    assert threads["requested"] == 1
    assert threads["xpgrad"]["numba"] == 1 and threads["xpgrad"]["blas"] == [1]
    assert threads["xpgrad"]["OMP_NUM_THREADS"] == "1"
    assert threads["in_process"]["numba"] == 1
    if HAS_TORCH:
        torch_threads = threads["pytorch"]
        assert torch_threads["torch_intra_op"] == torch_threads["torch_inter_op"] == 1
        assert torch_threads["OMP_NUM_THREADS"] == "1"
        assert set(torch_threads["openmp"]) == {1}

    quiet, busy = saved["phases"]
    assert (quiet["phase"], busy["phase"]) == ("quiet", "busy")
    for phase in (quiet, busy):
        assert len(phase["loadavg_start"]) == len(phase["loadavg_end"]) == 3
    assert busy["hog_processes"] == 1 and busy["hog_cpu_seconds"] > 0
    assert "hog_processes" not in quiet

    timed = {(r["phase"], r["workload"], r["framework"]) for r in saved["training"]}
    assert timed == {(p, w, f) for p in run.PHASES for w in workloads.WORKLOADS
                     for f in frameworks}
    assert all(r["ms"] > 0 for r in saved["training"])
    assert {(r["phase"], r["mode"], r["framework"]) for r in saved["overhead"]} == \
        {(p, m, f) for p in run.PHASES for m in report.OVERHEAD_LABELS for f in frameworks}

    rows = saved["comparison"]
    assert len(rows) == len(workloads.WORKLOADS) + len(report.OVERHEAD_LABELS)
    w1 = {(r["framework"], r["phase"]): r["ms"] for r in saved["training"]
          if r["workload"] == "W1"}
    assert rows[0]["xpgrad busy"] == w1["xpgrad", "busy"]
    if HAS_TORCH:
        assert rows[0]["xpgrad/PyTorch busy"] == pytest.approx(
            w1["xpgrad", "busy"] / w1["pytorch", "busy"])
        assert all(r[c] > 0 for r in rows for c in report.COMPARISON_COLUMNS[2:])

    comparison = (tmp_path / "comparison.md").read_text()
    assert comparison.startswith("1 thread for each framework")
    assert "Busy: 1 busy-loop process started by the benchmark" in comparison
    table = (tmp_path / "results.md").read_text()
    assert comparison in table and "Size sweep" in table
    if not results["environment"]["gpu"]:
        assert "GPU: none on this machine" in table
    assert saved["kernels"], "the kernel benchmark rows are missing"


class FakeWorker:
    """Records the requests a phase makes; each timed run takes ``seconds``."""

    def __init__(self, name, log, seconds):
        self.name, self.log, self.seconds = name, log, seconds

    def prepare(self, **request):
        self.log.append((self.name, "prepare", request.get("device")))

    def time(self, runs=1, lead=0):
        self.log.append((self.name, "time", runs, lead))
        return [self.seconds] * runs


def test_phases_alternate_frameworks_and_time_the_gpu_only_when_quiet():
    env = {"gpu": "some GPU", "torch": "2.13.0", "torch_cuda": True}
    log = []
    workers = {"xpgrad": FakeWorker("xpgrad", log, 0.004),
               "pytorch": FakeWorker("pytorch", log, 0.002)}
    repeats = run.BLOCK + 2
    quiet, _ = run.measure_phase(workers, env, "quiet", 0.05, 1, repeats, 10)
    assert {(r["workload"], r["device"]) for r in quiet} == \
        {(w, d) for w in workloads.WORKLOADS for d in ("cpu", "cuda")}
    assert all(r["ms"] == pytest.approx(4.0 if r["framework"] == "xpgrad" else 2.0)
               for r in quiet)
    # turns of a block of runs each, every turn after one untimed run, until each has
    # ``repeats`` timed runs
    timed = [entry for entry in log if entry[1] == "time"]
    assert timed[:4] == [("xpgrad", "time", run.BLOCK, 1), ("pytorch", "time", run.BLOCK, 1),
                         ("xpgrad", "time", 2, 1), ("pytorch", "time", 2, 1)]
    log.clear()
    busy, overhead = run.measure_phase(workers, env, "busy", 0.05, 1, 3, 10)
    assert {r["device"] for r in busy} == {"cpu"}
    assert {entry[2] for entry in log if entry[1] == "prepare"} == {"cpu", None}
    assert sorted(r["us_per_op"] for r in overhead) == pytest.approx([200.0] * 2 + [400.0] * 2)


def test_comparison_table_without_pytorch_shows_dashes():
    results = {"training": [{"phase": p, "workload": "W1", "framework": "xpgrad",
                             "device": "cpu", "ms": 2.0} for p in run.PHASES],
               "overhead": [{"phase": "quiet", "framework": f, "mode": "forward",
                             "us_per_op": us} for f, us in (("xpgrad", 3.0),
                                                            ("pytorch", 2.0))]}
    rows = report.comparison_rows(results)
    assert rows[0]["xpgrad quiet"] == 2.0 and rows[0]["xpgrad/PyTorch quiet"] is None
    overhead = rows[len(workloads.WORKLOADS)]
    assert overhead["unit"] == "µs/op" and overhead["xpgrad/PyTorch quiet"] == 1.5
    lines = report._table(rows, report.COMPARISON_COLUMNS)
    assert lines[2].startswith("| W1 MLP") and lines[2].endswith("| ms/step | 2 | - | - | "
                                                                 "2 | - | - |")
    assert "| 3 | 2 | 1.50 | - | - | - |" in lines[2 + len(workloads.WORKLOADS)]


def test_readme_table_has_the_columns_the_benchmark_writes():
    """The README's benchmark table is pasted from comparison.md: same header."""
    readme = README.read_text()
    section = readme[readme.index("## Benchmarks"):]
    header = report._table([], report.COMPARISON_COLUMNS)[0]
    assert header in section
    assert "python -m benchmarks" in section


def test_cpu_hog_runs_busy_loops_and_reaps_them():
    with machine.CpuHog(2, settle=0.3) as hog:
        for pid in hog.pids:
            os.kill(pid, 0)                       # alive
    for pid in hog.pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)                       # killed and reaped, no zombie left
    record = hog.record()
    assert record["hog_processes"] == 2 and hog.cpu_seconds > 0
    assert record["hog_cores"] == pytest.approx(hog.cpu_seconds / hog.seconds, abs=0.01)


def test_threads_applies_and_restores_in_this_process():
    import numba

    import engine.kernels.cpu  # noqa: F401

    before = numba.get_num_threads()
    with machine.threads(1) as used:
        assert used["numba"] == numba.get_num_threads() == 1
        assert set(used["blas"]) == {1}
    assert numba.get_num_threads() == before


def test_worker_reports_bad_requests_by_name():
    with Worker("xpgrad", 1) as worker:
        assert worker.threads()["numba"] == 1
        with pytest.raises(RuntimeError, match="(?s)worker \\(xpgrad\\).*'time' before"):
            worker.time()
        with pytest.raises(RuntimeError, match="(?s)worker \\(xpgrad\\).*unknown op 'sweep'"):
            worker.request(op="sweep")
        worker.prepare(kind="overhead", backward=True, n=5)
        times = worker.time(runs=3, lead=1)
        assert len(times) == 3 and all(t > 0 for t in times)


@pytest.mark.torch
@pytest.mark.parametrize("name", list(workloads.WORKLOADS))
def test_workloads_match_pytorch_architectures(name):
    """Both frameworks build the same model: same parameter count, same shapes."""
    pytest.importorskip("torch")
    ours = workloads.xpgrad_model(name, 0.05)
    theirs = workloads.torch_model(name, 0.05)
    shapes = sorted(tuple(p.shape) for p in ours.parameters())
    assert shapes == sorted(tuple(p.shape) for p in theirs.parameters())
    assert sum(int(np.prod(s)) for s in shapes) > 0


def test_crossover_picks_first_width_where_gpu_wins():
    sweep = [{"width": w, "device": d, "ms": ms} for w, d, ms in
             [(64, "cpu", 1.0), (64, "cuda", 2.0), (128, "cpu", 3.0), (128, "cuda", 2.5),
              (256, "cpu", 9.0), (256, "cuda", 3.0)]]
    assert run.crossover(sweep) == 128
    assert run.crossover([r for r in sweep if r["device"] == "cpu"]) is None
