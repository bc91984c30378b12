"""Helpers of the resume tests: run an example in a subprocess (optionally killed after K
batches), and compare two runs' checkpoints and histories exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import engine
from engine.tensor import Tensor

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
KILL_AFTER = "XPGRAD_KILL_AFTER_BATCHES"          # the examples' test-only hard stop

# What every example's checkpoint holds, on top of its own extra values.
REQUIRED_KEYS = {"model", "rng", "loader", "history", "epoch", "batch", "step", "running",
                 "args", "run_id"}


def run_example(name: str, out: Path, *flags: str, kill_after: int | None = None,
                prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    """``python examples/<name>.py --out OUT FLAGS`` in a fresh process, one thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    env.pop(KILL_AFTER, None)
    if kill_after is not None:
        env[KILL_AFTER] = str(kill_after)
    cmd = (prefix or []) + [sys.executable, str(EXAMPLES / f"{name}.py"), "--out", str(out),
                            *flags]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=env)


def assert_same(a, b, path: str = "") -> None:
    """Equal structure and exactly equal values (arrays bit for bit, dtypes included);
    wall times (``seconds``) and the run's identity (``run_id``) are left out."""
    if isinstance(a, Tensor) or isinstance(a, np.ndarray):
        a_arr = a.numpy() if isinstance(a, Tensor) else a
        b_arr = b.numpy() if isinstance(b, Tensor) else b
        assert a_arr.dtype == b_arr.dtype and a_arr.shape == b_arr.shape, path
        assert np.array_equal(a_arr, b_arr, equal_nan=a_arr.dtype.kind == "f"), path
        return
    if isinstance(a, dict):
        keys = set(a) - {"seconds", "seconds_per_epoch", "run_id"} - {
            k for k in a if str(k).endswith("_seconds_per_epoch")}
        assert keys == set(b) - {"seconds", "seconds_per_epoch", "run_id"} - {
            k for k in b if str(k).endswith("_seconds_per_epoch")}, path
        for key in keys:
            assert_same(a[key], b[key], f"{path}.{key}")
        return
    if isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}.{i}")
        return
    assert a == b and type(a) is type(b), f"{path}: {a!r} != {b!r}"


def assert_same_run(a: Path, b: Path, checkpoints=("checkpoint.safetensors",),
                    histories=("history.json",)) -> None:
    """Two output directories hold the same final checkpoints and histories."""
    for name in checkpoints:
        assert_same(engine.load(a / name), engine.load(b / name), name)
    for name in histories:
        assert_same(json.loads((a / name).read_text()), json.loads((b / name).read_text()),
                    name)


def assert_checkpoint_keys(path: Path, *, scheduler: bool, optimizer: bool = True) -> dict:
    """The checkpoint of a finished run holds everything a resume needs."""
    ckpt = engine.load(path)
    expected = REQUIRED_KEYS | ({"optimizer"} if optimizer else set()) | (
        {"scheduler"} if scheduler else set())
    assert set(ckpt) >= expected, sorted(expected - set(ckpt))
    assert ("scheduler" in ckpt) == scheduler and ("optimizer" in ckpt) == optimizer
    assert ckpt["rng"].dtype == np.uint8
    assert ckpt["batch"] == 0 and ckpt["loader"]["in_epoch"] is False
    assert ckpt["history"]["epoch"] == list(range(1, ckpt["epoch"] + 1))
    return ckpt


def assert_resumes_a_finished_run(main, argv: list[str], out: Path, results: dict, *,
                                  scheduler: bool, optimizer: bool = True,
                                  checkpoint: str = "checkpoint.safetensors",
                                  history: str = "history.json") -> None:
    """The finished run's checkpoint holds what a resume needs, and ``--resume`` on it
    trains nothing more and reports the same results (those after training included:
    a sample drawn from the restored random state, say)."""
    ckpt = assert_checkpoint_keys(out / checkpoint, scheduler=scheduler, optimizer=optimizer)
    curves = json.loads((out / history).read_text())
    again = main([*argv, "--resume"])
    assert_same(results, again, "results")
    assert_same(ckpt, engine.load(out / checkpoint), checkpoint)
    assert_same(curves, json.loads((out / history).read_text()), history)
