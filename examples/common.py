"""The plumbing every example shares: flags, progress bar, epoch log, plots, checkpoints.

The examples keep their model, data and training loop in their own file; this module only
holds what would otherwise be copied into each of them. The progress bar and the curves
are :mod:`engine.monitor`'s, which your own loops can use too::

    from common import (History, make_parser, print_report, progress, save_checkpoint,
                        save_graph, setup)

    parser = make_parser("mlp_digits", __doc__, epochs=30, lr=1e-3, batch_size=64)
    args = setup(parser.parse_args(argv))          # seeds the engine, creates args.out
    history = History(args.out)
    for epoch in range(1, args.epochs + 1):
        for step, (xb, yb) in enumerate(progress(loader, f"epoch {epoch}/{args.epochs}")):
            ...                                     # loss.backward()
            if epoch == 1 and step == 0:
                save_graph(loss, model, args.out)   # args.out/graph.svg
        history.log(epoch, train_loss=..., val_loss=..., train_acc=..., val_acc=...)
    history.plot()                                  # args.out/curves.png
    save_checkpoint(args.out / "checkpoint.safetensors", model, optimizer)
    print_report("test", {"accuracy": 0.98})

Flags of :func:`make_parser`: ``--epochs``, ``--lr``, ``--batch-size``, ``--seed``,
``--device`` (cpu | cuda), ``--out`` (default ``runs/<example name>``), ``--threads`` (BLAS
threads, default 1) and ``--smoke`` (tiny sizes and one epoch, for tests). Each example
adds its own flags to the parser it gets back.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import engine
from engine.monitor import History, progress

__all__ = ["make_parser", "setup", "progress", "History", "save_graph", "save_checkpoint",
           "load_checkpoint", "print_report", "format_confusion"]


def make_parser(name: str, description: str | None = None, *, epochs: int = 10,
                lr: float = 1e-3, batch_size: int = 64) -> argparse.ArgumentParser:
    """The common flags, with this example's defaults; add your own before parsing."""
    parser = argparse.ArgumentParser(
        prog=f"{name}.py", description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=epochs,
                        help=f"passes over the training data (default {epochs})")
    parser.add_argument("--lr", type=float, default=lr,
                        help=f"learning rate (default {lr:g})")
    parser.add_argument("--batch-size", type=int, default=batch_size,
                        help=f"samples per optimizer step (default {batch_size})")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the engine generator: init, shuffling, data (default 0)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the model and batches live (default cpu)")
    parser.add_argument("--out", type=Path, default=Path("runs") / name,
                        help=f"output directory for the plot, checkpoint and metrics "
                             f"(default runs/{name})")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (default 1: these matrices are small, and extra "
                             "threads spin-wait on a busy machine)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny data and model, one epoch: checks that everything runs")
    return parser


def setup(args: argparse.Namespace) -> argparse.Namespace:
    """Seed the engine, check the device, limit BLAS threads, create ``args.out``.

    The examples multiply small matrices (an LSTM step is (64, 64) @ (64, 256)); there
    OpenBLAS's extra threads cost more than they save, and on a machine whose cores are
    busy with other work their spin-waiting made the LSTM example 100× slower. So BLAS
    gets ``--threads`` threads (default 1), set through threadpoolctl (installed with
    scikit-learn); without it, set ``OPENBLAS_NUM_THREADS`` yourself.
    """
    if args.device == "cuda" and not engine.cuda_is_available():
        sys.exit("--device cuda: no GPU is usable here (CuPy missing or no NVIDIA device); "
                 "install xpgrad[gpu] or use --device cpu")
    _limit_blas_threads(args.threads)
    if args.smoke:
        args.epochs = 1
    engine.manual_seed(args.seed)
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


_blas_limits = None


def _limit_blas_threads(threads: int) -> None:
    global _blas_limits
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    _blas_limits = threadpool_limits(limits=threads, user_api="blas")


def save_graph(loss, model, out: Path) -> Path:
    """``out/graph.svg``: the autograd graph of ``loss``, parameters named as in ``model``.

    The examples call it once, after the first training batch's ``backward``, so the
    drawing shows each parameter's gradient shape too.
    """
    return engine.draw_graph(loss, Path(out) / "graph.svg", params=model.named_parameters(),
                             png=False)[0]


def save_checkpoint(path: str | Path, model, optimizer=None, **extra) -> Path:
    """``engine.save`` of ``{"model": state_dict, "optimizer": state_dict, **extra}``.

    The file is safetensors (no pickle) and written atomically. Restore with
    ``ckpt = engine.load(path); model.load_state_dict(ckpt["model"])`` and
    ``optimizer.load_state_dict(ckpt["optimizer"])``.
    """
    state = {"model": model.state_dict()}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    state.update(extra)
    engine.save(state, path)
    return Path(path)


def load_checkpoint(path: str | Path, model, optimizer=None) -> dict:
    """Load what :func:`save_checkpoint` wrote into ``model`` (and ``optimizer``)."""
    state = engine.load(path)
    model.load_state_dict(state["model"])
    if optimizer is not None and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    return state


def format_confusion(matrix, class_names=None) -> str:
    """A confusion matrix as text: rows are true classes, columns predicted ones."""
    matrix = np.asarray(matrix)
    names = [str(c) for c in (class_names if class_names is not None
                              else range(matrix.shape[0]))]
    width = max(max(len(n) for n in names), len(str(int(matrix.max(initial=0)))), 4)
    lines = [" " * (width + 7) + "predicted",
             f"{'true':>{width + 2}}   " + " ".join(f"{n:>{width}}" for n in names)]
    for name, row in zip(names, matrix):
        lines.append(f"{name:>{width + 2}} | " + " ".join(f"{int(v):>{width}}" for v in row))
    return "\n".join(lines)


def print_report(title: str, metrics: dict, confusion=None, class_names=None) -> None:
    """The final report: one line per metric, then the confusion matrix if given."""
    print(f"\n== {title} ==")
    width = max(len(k) for k in metrics) if metrics else 0
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, (float, np.floating)) else str(value)
        print(f"  {key:<{width}}  {shown}")
    if confusion is not None:
        print("  confusion matrix:")
        print("\n".join("    " + line
                        for line in format_confusion(confusion, class_names).splitlines()))
    sys.stdout.flush()
