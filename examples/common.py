"""The plumbing every example shares: flags, progress bar, epoch log, plots, checkpoints.

The examples keep their model, data and training loop in their own file; this module only
holds what would otherwise be copied into each of them. The progress bar and the curves
are :mod:`engine.monitor`'s, which your own loops can use too::

    from common import History, Run, make_parser, print_report, progress, save_graph, setup

    parser = make_parser("mlp_digits", __doc__, epochs=30, lr=1e-3, batch_size=64)
    args = setup(parser.parse_args(argv))          # seeds the engine, creates args.out
    history = History(args.out)
    run = Run(args, model=model, optimizer=optimizer, scheduler=scheduler,
              loader=loader, history=history)     # with --resume: where the checkpoint was
    for epoch in run.epochs():
        sums = run.running(total=0.0, seen=0)       # restored inside a resumed epoch
        bar = progress(loader, f"epoch {epoch}/{args.epochs}", initial=run.batch)
        for step, (xb, yb) in enumerate(bar, start=run.batch):
            ...                                     # loss.backward(), optimizer.step()
            if epoch == 1 and step == 0:
                save_graph(loss, model, args.out)   # args.out/graph.svg
            sums.total += loss.item() * len(yb)
            sums.seen += len(yb)
            run.batch_done()                        # a checkpoint every N batches
        history.log(epoch, train_loss=sums.total / sums.seen, val_loss=...)
        run.epoch_done()                            # a checkpoint at each epoch's end
    history.plot()                                  # args.out/curves.png
    print_report("test", {"accuracy": 0.98})

Flags of :func:`make_parser`: ``--epochs``, ``--lr``, ``--batch-size``, ``--seed``,
``--device`` (cpu | cuda), ``--out`` (default ``runs/<example name>``), ``--threads`` (the
engine's threads, default 1), ``--smoke`` (tiny sizes and, unless ``--epochs`` is given, one epoch:
for tests), ``--resume`` and ``--checkpoint-every N`` (see :class:`Run`). Each example adds
its own flags to the parser it gets back.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import engine
from engine.monitor import History, progress

__all__ = ["make_parser", "add_resume_flags", "setup", "progress", "History", "Run",
           "DefaultEpochs", "save_graph", "print_report", "format_confusion"]


class DefaultEpochs(int):
    """The ``--epochs`` default: ``--smoke`` replaces it with 1, a given ``--epochs`` stays."""


def make_parser(name: str, description: str | None = None, *, epochs: int = 10,
                lr: float = 1e-3, batch_size: int = 64) -> argparse.ArgumentParser:
    """The common flags, with this example's defaults; add your own before parsing."""
    parser = argparse.ArgumentParser(
        prog=f"{name}.py", description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=DefaultEpochs(epochs),
                        help=f"passes over the training data (default {epochs}; 1 with "
                             f"--smoke)")
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
                        help="threads of the engine: BLAS, its worker pool and Numba's "
                             "kernels (engine.set_num_threads; default 1: these matrices "
                             "are small)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny data and model, one epoch unless --epochs is given: "
                             "checks that everything runs")
    add_resume_flags(parser)
    return parser


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def add_resume_flags(parser: argparse.ArgumentParser) -> None:
    """``--resume`` and ``--checkpoint-every N``, read by :class:`Run`."""
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint in --out (model, optimizer, "
                             "schedule, random state, data order, curves): the result is "
                             "the one an uninterrupted run would give")
    parser.add_argument("--checkpoint-every", type=_non_negative, default=0, metavar="N",
                        help="also write the checkpoint every N training batches (default "
                             "0: at the end of each epoch only)")


def setup(args: argparse.Namespace) -> argparse.Namespace:
    """Seed the engine, check the device, set the engine's threads, create ``args.out``.

    The examples multiply small matrices (an LSTM step is (64, 64) @ (64, 256)), where a
    second thread costs more than it saves, so the engine gets ``--threads`` threads
    (default 1) through :func:`engine.set_num_threads`, which caps BLAS, the engine's
    worker pool and Numba's kernels alike.
    """
    if args.device == "cuda" and not engine.cuda_is_available():
        sys.exit("--device cuda: no GPU is usable here (CuPy missing or no NVIDIA device); "
                 "install xpgrad[gpu] or use --device cpu")
    engine.set_num_threads(args.threads)
    args.epochs = 1 if args.smoke and isinstance(args.epochs, DefaultEpochs) else \
        int(args.epochs)
    engine.manual_seed(args.seed)
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def save_graph(loss, model, out: Path) -> Path:
    """``out/graph.svg``: the autograd graph of ``loss``, parameters named as in ``model``.

    The examples call it once, after the first training batch's ``backward``, so the
    drawing shows each parameter's gradient shape too.
    """
    return engine.draw_graph(loss, Path(out) / "graph.svg", params=model.named_parameters(),
                             png=False)[0]


# Flags that may change between a run and its resume: where and how it runs, not what.
_FREE_FLAGS = {"resume", "checkpoint_every", "out", "device", "threads"}
_KILL_AFTER = "XPGRAD_KILL_AFTER_BATCHES"      # tests: SIGKILL self after that many batches
_batches_in_process = 0


def _settings(args: argparse.Namespace) -> str:
    """The flags that decide the result, as JSON (stored in the checkpoint)."""
    return json.dumps({k: v for k, v in sorted(vars(args).items()) if k not in _FREE_FLAGS},
                      default=str)


class Run:
    """Checkpoints of one training loop, and ``--resume`` from them.

    The checkpoint (``engine.save``: safetensors, written atomically, so a kill during a
    write leaves the previous one intact) holds the model, optimizer and scheduler state
    dicts, the engine's random state, the loader's position (its epoch order and the
    batches already taken), the history so far, the epoch and batch reached, the
    epoch's running sums (:meth:`running`), the flags, and ``extra`` values. It is
    written at the end of every epoch and, with ``--checkpoint-every N``, after every N-th
    training batch. With ``--resume`` the constructor loads it (build everything as a
    fresh run would first): :meth:`epochs` continues from the saved epoch, the loader
    from the saved batch, and the result equals that of an uninterrupted run, bit for
    bit. A checkpoint written with other flags (``--device``, ``--threads``, ``--out``
    and the checkpoint flags aside) is refused.

    A program of several phases (pre-training, then fine-tuning) gives each phase its
    own ``path`` and passes the previous phase's Run as ``after``: a phase's checkpoint
    left by another run (its ``run_id`` differs) is ignored.
    """

    def __init__(self, args: argparse.Namespace, *, model, optimizer=None, scheduler=None,
                 loader=None, history: History | None = None, epochs: int | None = None,
                 path: str | Path | None = None, extra: dict | None = None,
                 after: Run | None = None):
        self.args, self.model, self.optimizer, self.scheduler = args, model, optimizer, \
            scheduler
        self.loader, self.history, self.extra = loader, history, dict(extra or {})
        self.total_epochs = args.epochs if epochs is None else epochs
        self.path = Path(args.out) / "checkpoint.safetensors" if path is None else Path(path)
        self.epoch = 0          # epochs completed
        self.batch = 0          # batches done in the current epoch
        self.step = 0           # batches done since training started
        self.run_id = after.run_id if after is not None else uuid.uuid4().hex
        self._sums: SimpleNamespace | None = None
        self._saved_sums: dict | None = None       # the running sums of a resumed epoch
        self._loader_state: dict | None = None     # for a loader given to use_loader
        if args.resume:
            self._load(after)

    # ---------------------------------------------------------------- the loop
    def epochs(self):
        """The epoch numbers still to train, from the checkpoint's on with ``--resume``."""
        for epoch in range(self.epoch + 1, self.total_epochs + 1):
            yield epoch
            if self.epoch != epoch:
                raise RuntimeError("Run.epochs: call run.epoch_done() at the end of each "
                                   "epoch")

    def running(self, **initial) -> SimpleNamespace:
        """This epoch's running sums (``sums.total += ...``), saved with every checkpoint:
        ``initial`` at the start of an epoch, the saved values inside a resumed one."""
        values, self._saved_sums = self._saved_sums, None
        if values is not None and set(values) != set(initial):
            raise ValueError(f"Run.running: the checkpoint holds {sorted(values)}, the loop "
                             f"asks for {sorted(initial)}")
        self._sums = SimpleNamespace(**(values if values is not None else initial))
        return self._sums

    def use_loader(self, loader):
        """A loader built for this epoch: inside a resumed epoch it continues from the
        saved position. Returns the loader."""
        self.loader = loader
        if self._loader_state is not None:
            loader.load_state_dict(self._loader_state)
            self._loader_state = None
        return loader

    def batch_done(self) -> None:
        """Count a training batch; write the checkpoint every ``--checkpoint-every``."""
        global _batches_in_process
        self.batch += 1
        self.step += 1
        every = self.args.checkpoint_every
        if every and self.step % every == 0:
            self.save()
        _batches_in_process += 1
        if str(_batches_in_process) == os.environ.get(_KILL_AFTER):
            os.kill(os.getpid(), signal.SIGKILL)       # a hard stop at a known point

    def epoch_done(self) -> None:
        """Count the epoch (after ``history.log``) and write the checkpoint."""
        self.epoch += 1
        self.batch = 0
        self._sums = None
        self.save()

    # ---------------------------------------------------------------- the file
    def state_dict(self) -> dict:
        """Everything the checkpoint holds (arrays, Tensors and plain values)."""
        state = {"model": self.model.state_dict(), "rng": engine.get_rng_state(),
                 "epoch": self.epoch, "batch": self.batch, "step": self.step,
                 "running": dict(vars(self._sums)) if self._sums is not None else {},
                 "args": _settings(self.args), "run_id": self.run_id, **self.extra}
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        if self.loader is not None:
            state["loader"] = self.loader.state_dict()
        if self.history is not None:
            h = self.history
            state["history"] = {"epoch": list(h.epochs), "values": dict(h.values),
                                "seconds": list(h.seconds)}
        return state

    def save(self) -> Path:
        engine.save(self.state_dict(), self.path)
        return self.path

    def _load(self, after: Run | None) -> None:
        if not self.path.exists():
            print(f"--resume: no checkpoint at {self.path}; starting from the beginning")
            return
        ckpt = engine.load(self.path)
        if after is not None and ckpt.get("run_id") != after.run_id:
            print(f"--resume: {self.path} was left by another run; starting this phase "
                  f"from the beginning")
            return
        self._check_settings(ckpt)
        self.model.load_state_dict(ckpt["model"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.history is not None:
            self.history.epochs = list(ckpt["history"]["epoch"])
            self.history.values = {k: list(v) for k, v in ckpt["history"]["values"].items()}
            self.history.seconds = list(ckpt["history"]["seconds"])
            self.history.restart_clock()
        if "loader" in ckpt:
            if self.loader is not None:
                self.loader.load_state_dict(ckpt["loader"])
            else:
                self._loader_state = ckpt["loader"]
        self.epoch, self.batch, self.step = ckpt["epoch"], ckpt["batch"], ckpt["step"]
        self._saved_sums = ckpt["running"] if self.batch else None
        self.run_id = ckpt["run_id"]
        engine.set_rng_state(ckpt["rng"])
        where = "the end" if self.epoch >= self.total_epochs else \
            f"epoch {self.epoch + 1}, batch {self.batch}"
        print(f"resuming from {self.path}: {where} (step {self.step})")

    def _check_settings(self, ckpt: dict) -> None:
        saved, now = json.loads(ckpt["args"]), json.loads(_settings(self.args))
        changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
        if changed:
            was = ", ".join(f"{k}={saved.get(k)}" for k in changed)
            has = ", ".join(f"{k}={now.get(k)}" for k in changed)
            sys.exit(f"--resume: {self.path} was written with {was}; this run has {has}. "
                     f"Resume with the same flags, or start afresh without --resume")


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
