"""The benchmark command in its tiny smoke mode: it runs and writes its three outputs."""

import json

import numpy as np
import pytest

from benchmarks import run, workloads


def test_suite_smoke_mode_writes_table_json_and_plot(tmp_path):
    results = run.main(["--smoke", "--out", str(tmp_path)])
    for name in ("results.json", "results.md", "results.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert {r["workload"] for r in saved["training"]} == set(workloads.WORKLOADS)
    assert all(r["ms"] > 0 for r in saved["training"])
    table = (tmp_path / "results.md").read_text()
    assert "Training steps" in table and "Size sweep" in table
    if not results["environment"]["gpu"]:
        assert "GPU: none on this machine" in table
    assert saved["kernels"], "the kernel benchmark rows are missing"


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
