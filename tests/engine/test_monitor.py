"""engine.monitor: the progress bar and the per-epoch curves, usable from any training loop."""

import json
import sys

import numpy as np
import pytest

from engine.monitor import History, progress


def test_log_prints_one_line_per_epoch_and_keeps_values_and_times(tmp_path, capsys):
    history = History(tmp_path / "run", total_epochs=3)
    history.log(1, train_loss=np.float32(0.5), val_loss=0.75, val_acc=0.25)
    history.log(2, echo=False, train_loss=0.25, val_loss=0.5, val_acc=0.5)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert out[0].startswith("epoch   1/3  train_loss 0.5000  val_loss 0.7500  val_acc 0.2500  ")
    assert out[0].endswith("s")
    assert history.epochs == [1, 2]
    assert history.values == {"train_loss": [0.5, 0.25], "val_loss": [0.75, 0.5],
                              "val_acc": [0.25, 0.5]}
    assert history.last("val_acc") == 0.5
    assert len(history.seconds) == 2 and min(history.seconds) >= 0.0
    assert history.seconds_per_epoch == pytest.approx(np.mean(history.seconds))
    assert history.quantities() == ["loss", "acc"]


def test_plot_draws_one_panel_per_quantity_without_touching_pyplot(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    plt = pytest.importorskip("matplotlib.pyplot")
    image = pytest.importorskip("matplotlib.image")
    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    history = History(tmp_path / "new" / "dir")                 # created when written
    for epoch in range(1, 6):
        history.log(epoch, echo=False, train_loss=1 / epoch, val_loss=1.2 / epoch,
                    train_acc=0.1 * epoch, lr=1e-3)
    path = history.plot(title="demo", log_scale=("loss",), references={"acc": ("base", 0.3)})
    assert path == tmp_path / "new" / "dir" / "curves.png"
    pixels = image.imread(path)
    assert pixels.shape[:2] == (350, 3 * 450)                    # loss, acc, lr panels
    assert matplotlib.get_backend() == backend and plt.get_fignums() == figures


def test_plot_of_nothing_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="History.plot: nothing logged yet"):
        History(tmp_path).plot()


def test_save_json_holds_the_curves_times_and_extras(tmp_path):
    history = History(tmp_path)
    history.log(1, echo=False, train_loss=0.5)
    path = history.save_json(test={"accuracy": np.float64(0.9), "cm": np.eye(2, dtype=int)})
    payload = json.loads(path.read_text())
    assert payload["epoch"] == [1] and payload["train_loss"] == [0.5]
    assert len(payload["seconds"]) == 1
    assert payload["test"] == {"accuracy": 0.9, "cm": [[1, 0], [0, 1]]}


def test_progress_yields_every_item_and_shows_a_running_value(capsys):
    pytest.importorskip("tqdm")
    bar = progress(range(5), "epoch 1/1")
    seen = []
    for i in bar:
        seen.append(i)
        bar.set_postfix(loss=f"{1 / (i + 1):.3f}")
    assert seen == [0, 1, 2, 3, 4]
    assert "epoch 1/1" in capsys.readouterr().err


def test_missing_tools_are_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match=r"progress: needs tqdm"):
        progress(range(2), "x")
    history = History(tmp_path)
    history.log(1, echo=False, loss=1.0)
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"History.plot: needs matplotlib"):
        history.plot()
