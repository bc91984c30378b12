"""The example trainers: each runs end to end in --smoke mode and writes its plot,
checkpoint, history and report; the linear-regression example's numbers are checked; the
slow tests train at the default settings and check the accuracy each example promises."""

from __future__ import annotations

import csv
import importlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import engine
from engine import monitor
from engine.tensor import Tensor

sys.path.insert(0, str(Path(__file__).parent))
from graph_check import assert_graph  # noqa: E402
from resume_check import assert_resumes_a_finished_run  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")


def load_example(name: str):
    """Import examples/<name>.py (which imports examples/common.py as ``common``)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    common = sys.modules.get("common")
    if common is not None and Path(common.__file__).parent != EXAMPLES:
        pytest.fail(f"another module named 'common' is imported: {common.__file__}")
    return importlib.import_module(name)


@pytest.fixture(autouse=True)
def _restore_threads(restore_threads):
    """The examples set the engine's threads (BLAS's and Numba's too) for the whole
    process; undo it after each test."""


def run(name: str, out: Path, *extra: str) -> dict:
    return load_example(name).main(["--out", str(out), *extra])


def check_outputs(out: Path, epochs: int, with_optimizer: bool = True) -> dict:
    """The files every example writes; returns the loaded checkpoint."""
    png = out / "curves.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert png.stat().st_size > 5000                       # axes and curves, not an empty PNG
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == list(range(1, epochs + 1))
    assert len(history["seconds"]) == epochs
    state = engine.load(out / "checkpoint.safetensors")
    model = state["model"]
    assert model, "empty model state dict"
    for key, value in model.items():
        assert isinstance(value, Tensor), key
        assert value.dtype == np.float32, key
        assert np.all(np.isfinite(value.numpy())), key
    if with_optimizer:
        assert set(state["optimizer"]) == {"state", "param_groups"}
        assert len(state["optimizer"]["state"]) == len(model)     # Adam stepped every param
    names = assert_graph(out / "graph.svg", model)
    assert len(names) == len(state["optimizer"]["state"] if with_optimizer else model)
    return state


SMOKE = ["mlp_digits", "cnn_digits", "lstm_text_classifier", "transformer_classifier"]
SCHEDULED = {"mlp_digits", "cnn_digits"}


@pytest.mark.parametrize("name", SMOKE)
def test_smoke_classifier(name, tmp_path, capsys):
    results = run(name, tmp_path, "--smoke")
    out = capsys.readouterr().out
    assert "== test" in out and "confusion matrix" in out
    assert "epoch   1/1" in out
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert math.isfinite(results["test_loss"]) and results["test_loss"] > 0
    state = check_outputs(tmp_path, epochs=1)
    assert state["epoch"] == 1
    history = json.loads((tmp_path / "history.json").read_text())
    assert set(history) >= {"train_loss", "val_loss", "train_acc", "val_acc", "test"}
    assert history["test"]["test_accuracy"] == pytest.approx(results["test_accuracy"])
    assert_resumes_a_finished_run(load_example(name).main, ["--out", str(tmp_path), "--smoke"],
                                  tmp_path, results, scheduler=name in SCHEDULED)


def test_smoke_checkpoints_load_into_the_models(tmp_path, capsys):
    mlp = load_example("mlp_digits")
    run("mlp_digits", tmp_path / "mlp", "--smoke")
    model = mlp.build_model([64, 16, 10], dropout=0.0)
    model.load_state_dict(engine.load(tmp_path / "mlp" / "checkpoint.safetensors")["model"])

    cnn = load_example("cnn_digits")
    run("cnn_digits", tmp_path / "cnn", "--smoke")
    model = cnn.ClassicCNN(1, (8, 8), 10, channels=(4, 8), hidden=16)
    model.load_state_dict(engine.load(tmp_path / "cnn" / "checkpoint.safetensors")["model"])
    assert model.classifier[0].in_features == 8 * 2 * 2      # 8×8 → 4×4 → 2×2, 8 channels


def test_linear_regression_reaches_the_closed_form_and_rejects_f3(tmp_path, capsys):
    results = run("linear_regression", tmp_path)
    out = capsys.readouterr().out
    # Gradient descent converges to the least-squares solution, near the true line.
    assert results["max_abs_diff_to_closed_form"] < 1e-3
    assert results["theta0"] == pytest.approx(4.0, abs=0.3)
    assert results["theta1"] == pytest.approx(3.0, abs=0.3)
    assert results["test_mse"] == pytest.approx(results["closed_form_test_mse"], rel=1e-3)
    # The check rejects the articles' gradient and accepts the derived one and autograd's.
    assert results["gradcheck_articles_F3"] is False
    assert results["gradcheck_derived"] is True
    assert results["gradcheck_autograd"] is True
    assert "FAILED" in out and "uphill" in out
    state = check_outputs(tmp_path, epochs=200, with_optimizer=False)
    assert set(state["model"]) == {"theta0", "theta1"}
    assert state["model"]["theta1"].item() == pytest.approx(results["theta1"])


def test_linear_regression_article_gradient_values():
    lr = load_example("linear_regression")
    x = engine.tensor([0.0, 1.0, 2.0], dtype=np.float64)
    y = engine.tensor([1.0, 3.0, 2.0], dtype=np.float64)
    t0 = engine.tensor(0.5, dtype=np.float64, requires_grad=True)
    t1 = engine.tensor(0.25, dtype=np.float64, requires_grad=True)
    r = y.numpy() - (0.5 + 0.25 * x.numpy())                    # residuals y - ŷ
    g0, g1 = engine.grad(lr.ArticleLoss.apply(t0, t1, x, y), [t0, t1])
    assert g0.item() == pytest.approx(r.sum() / 3) and g1.item() == pytest.approx(
        (r * x.numpy()).sum() / 3)
    g0, g1 = engine.grad(lr.DerivedLoss.apply(t0, t1, x, y), [t0, t1])
    assert g0.item() == pytest.approx(-r.sum()) and g1.item() == pytest.approx(
        -(r * x.numpy()).sum())


def test_smoke_linear_regression(tmp_path, capsys):
    results = run("linear_regression", tmp_path, "--smoke")
    assert "== test" in capsys.readouterr().out
    check_outputs(tmp_path, epochs=1, with_optimizer=False)
    assert results["gradcheck_articles_F3"] is False
    assert_resumes_a_finished_run(load_example("linear_regression").main,
                                  ["--out", str(tmp_path), "--smoke"], tmp_path, results,
                                  scheduler=False, optimizer=False)


def _write_csv(path: Path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "review", "stars"])
        writer.writerows(rows)


@pytest.mark.parametrize("name", ["lstm_text_classifier", "transformer_classifier"])
def test_text_classifiers_train_on_a_csv(name, tmp_path, capsys):
    rng = np.random.default_rng(0)
    words = {"low": "awful bad poor", "mid": "fine okay average", "high": "great superb good"}
    rows = []
    for i in range(60):
        label = ["low", "mid", "high"][i % 3]
        text = " ".join(rng.choice(words[label].split(), size=4)) + ", with a comma"
        rows.append([i, text, label])
    path = tmp_path / "reviews.csv"
    _write_csv(path, rows)
    results = run(name, tmp_path / "out", "--smoke", "--csv", str(path),
                  "--text-column", "review", "--label-column", "stars")
    out = capsys.readouterr().out
    assert "classes ['high', 'low', 'mid']" in out
    assert "averaged over the classes (macro)" in out
    assert 0.0 <= results["test_f1"] <= 1.0
    state = check_outputs(tmp_path / "out", epochs=1)
    assert state["classes"] == ["high", "low", "mid"]
    assert state["model"]["fc.weight"].shape[0] == 3
    vocab = json.loads((tmp_path / "out" / "tokenizer.json").read_text())
    assert "superb" in vocab["config"]["word_index"]


def test_text_classifier_reports_a_missing_column(tmp_path):
    path = tmp_path / "reviews.csv"
    _write_csv(path, [[0, "good", "high"]])
    with pytest.raises(ValueError, match="no column 'text'"):
        run("lstm_text_classifier", tmp_path / "out", "--smoke", "--csv", str(path))


def test_common_flags_and_report(tmp_path, capsys):
    import numba

    common = load_example("common")
    assert common.History is monitor.History and common.progress is monitor.progress
    parser = common.make_parser("demo", epochs=7, lr=0.5, batch_size=3)
    args = parser.parse_args([])
    assert (args.epochs, args.lr, args.batch_size, args.seed, args.device) == (7, 0.5, 3, 0,
                                                                                "cpu")
    assert args.out == Path("runs") / "demo" and not args.smoke
    args = common.setup(parser.parse_args(["--out", str(tmp_path / "o"), "--smoke"]))
    assert args.epochs == 1 and (tmp_path / "o").is_dir()
    assert engine.get_num_threads() == 1 and numba.get_num_threads() == 1   # --threads 1
    common.setup(parser.parse_args(["--out", str(tmp_path / "o"), "--threads", "2"]))
    assert engine.get_num_threads() == 2
    assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
    with pytest.raises(SystemExit):
        parser.parse_args(["--device", "tpu"])
    common.print_report("test", {"accuracy": 0.5}, np.array([[3, 1], [0, 4]]), ["a", "b"])
    out = capsys.readouterr().out
    assert "accuracy  0.5000" in out
    assert "a |    3    1" in out and "b |    0    4" in out


# ---------------------------------------------------------------- default settings

@pytest.mark.slow
def test_mlp_digits_default_accuracy(tmp_path):
    results = run("mlp_digits", tmp_path)
    assert results["test_accuracy"] >= 0.97
    check_outputs(tmp_path, epochs=40)


@pytest.mark.slow
def test_cnn_digits_default_accuracy(tmp_path):
    results = run("cnn_digits", tmp_path)
    assert results["test_accuracy"] >= 0.98
    check_outputs(tmp_path, epochs=15)
