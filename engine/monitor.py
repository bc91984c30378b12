"""Watching a training loop: a progress bar over the batches and per-epoch curves.

What the examples use, for your own loop::

    from engine.monitor import History, progress

    history = History("runs/mine", total_epochs=10)
    for epoch in range(1, 11):
        bar = progress(loader, f"epoch {epoch}/10")
        for xb, yb in bar:
            ...
            bar.set_postfix(loss=f"{loss.item():.4f}")
        history.log(epoch, train_loss=..., val_loss=..., val_acc=...)   # one printed line
    history.plot()                     # runs/mine/curves.png: one panel per quantity
    history.save_json()                # runs/mine/history.json

The bar is tqdm's and the plot matplotlib's (``pip install xpgrad[examples]`` brings both);
each is imported only when used. The plot is drawn on its own figure, off screen: it leaves
matplotlib's backend and pyplot's figures alone (safe in a notebook or a script with
windows of its own).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

__all__ = ["progress", "History"]


def progress(iterable, desc: str, **kwargs):
    """A tqdm progress bar over ``iterable`` (batches) that disappears when it ends.

    Call ``bar.set_postfix(loss=...)`` on the returned object to show a running value;
    ``kwargs`` go to ``tqdm`` (e.g. ``total=`` for an iterable without a length).
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("progress: needs tqdm (pip install tqdm, or xpgrad[examples])"
                          ) from None
    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True, **kwargs)


class History:
    """Per-epoch metrics: printed as one line, kept for the plot, written as JSON.

    ``log(epoch, train_loss=..., val_loss=..., train_acc=..., ...)``: names that start with
    ``train_`` / ``val_`` are paired in one panel of the plot per quantity (loss, acc...).
    The wall time of each epoch (since the previous ``log`` or the constructor) is kept as
    ``seconds``. Files go to the directory ``out``, created when first written.
    """

    def __init__(self, out: str | Path, total_epochs: int | None = None):
        self.out = Path(out)
        self.total_epochs = total_epochs
        self.epochs: list[int] = []
        self.values: dict[str, list[float]] = {}
        self.seconds: list[float] = []
        self._start = time.perf_counter()

    def restart_clock(self) -> None:
        """Start timing the next epoch now (e.g. after a slow set-up)."""
        self._start = time.perf_counter()

    def log(self, epoch: int, echo: bool = True, **metrics: float) -> None:
        """Record this epoch's values (and its wall time); print them unless not ``echo``."""
        now = time.perf_counter()
        self.seconds.append(now - self._start)
        self._start = now
        self.epochs.append(epoch)
        for key, value in metrics.items():
            self.values.setdefault(key, []).append(float(value))
        if not echo:
            return
        of = f"/{self.total_epochs}" if self.total_epochs else ""
        parts = [f"epoch {epoch:3d}{of}"]
        parts += [f"{key} {float(value):.4f}" for key, value in metrics.items()]
        parts.append(f"{self.seconds[-1]:.1f}s")
        print("  ".join(parts), flush=True)

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.mean(self.seconds)) if self.seconds else float("nan")

    def last(self, key: str) -> float:
        return self.values[key][-1]

    def quantities(self) -> list[str]:
        """One per panel: ``train_loss`` and ``val_loss`` are both ``loss``."""
        found = []
        for key in self.values:
            q = key.split("_", 1)[1] if key.startswith(("train_", "val_")) else key
            if q not in found:
                found.append(q)
        return found

    def plot(self, filename: str = "curves.png", title: str | None = None,
             log_scale: tuple[str, ...] = (), references: dict | None = None) -> Path:
        """One panel per quantity, training and validation curves against the epoch.

        ``log_scale``: quantities drawn on a logarithmic axis. ``references``: horizontal
        lines, ``{quantity: (label, value)}``, e.g. a baseline's accuracy.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
            from matplotlib.ticker import MaxNLocator
        except ImportError:
            raise ImportError("History.plot: needs matplotlib (pip install matplotlib, or "
                              "xpgrad[examples])") from None

        quantities = self.quantities()
        if not quantities:
            raise ValueError("History.plot: nothing logged yet; call log(epoch, ...) first")
        fig = Figure(figsize=(4.5 * len(quantities), 3.5))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(quantities), squeeze=False)
        marker = "o" if len(self.epochs) <= 50 else None
        for ax, q in zip(axes[0], quantities):
            for key in (f"train_{q}", f"val_{q}", q):
                if key in self.values:
                    ax.plot(self.epochs, self.values[key], marker=marker, markersize=3,
                            label=key.split("_", 1)[0] if key != q else q)
            if references and q in references:
                label, value = references[q]
                ax.axhline(value, color="gray", linestyle="--", label=label)
            if q in log_scale:
                ax.set_yscale("log")
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(q)
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / filename
        fig.savefig(path, dpi=100)
        return path

    def save_json(self, filename: str = "history.json", **extra) -> Path:
        """The curves, the epoch times and anything in ``extra`` (e.g. test metrics)."""
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / filename
        payload = {"epoch": self.epochs, **self.values, "seconds": self.seconds, **extra}
        path.write_text(json.dumps(payload, indent=1, default=_jsonable) + "\n")
        return path


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
