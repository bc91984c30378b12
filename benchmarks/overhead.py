"""Per-op overhead: a chain of 1,000 adds on 1-element tensors, forward and
forward+backward, in µs per op, beside PyTorch CPU when it is installed.

    python benchmarks/overhead.py [--n 1000] [--repeats 7] [--threads N]

Both frameworks run in this process here, on the same ``--threads``;
``python -m benchmarks`` times them in a process each, quiet and busy.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import machine  # noqa: E402


def _time(fn, repeats: int) -> tuple[float, float]:
    """Median and spread (max - min) of ``repeats`` timed calls, after one warm-up."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), max(samples) - min(samples)


def xpgrad_chain(n: int, backward: bool):
    import engine

    def run():
        x = engine.Tensor(np.ones(1, dtype=np.float32), requires_grad=True)
        one = engine.Tensor(np.ones(1, dtype=np.float32))
        y = x
        for _ in range(n):
            y = y + one
        if backward:
            y.backward(np.ones(1, dtype=np.float32))

    return run


def torch_chain(n: int, backward: bool):
    import torch

    def run():
        x = torch.ones(1, requires_grad=True)
        one = torch.ones(1)
        y = x
        for _ in range(n):
            y = y + one
        if backward:
            y.backward(torch.ones(1))

    return run


def chain(framework: str, n: int, backward: bool):
    """The timed call of ``framework``: a chain of ``n`` adds, and its backward."""
    return (xpgrad_chain if framework == "xpgrad" else torch_chain)(n, backward)


def run(n: int = 1000, repeats: int = 7) -> list[dict]:
    """Rows of {framework, mode, us_per_op, spread_us}, both frameworks in this process
    (``python -m benchmarks`` runs each in a process of its own)."""
    frameworks = ["xpgrad"]
    try:
        import torch  # noqa: F401

        frameworks.append("pytorch")
    except ImportError:
        pass
    rows = []
    for name in frameworks:
        for mode, backward in (("forward", False), ("forward+backward", True)):
            median, spread = _time(chain(name, n, backward), repeats)
            rows.append({"framework": name, "mode": mode, "us_per_op": median / n * 1e6,
                         "spread_us": spread / n * 1e6})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=machine.usable_cores(),
                        help="threads of every pool, both frameworks (default: the usable "
                             "cores)")
    args = parser.parse_args(argv)
    import engine  # noqa: F401

    with contextlib.suppress(ImportError):
        import torch  # noqa: F401
    with machine.threads(args.threads):
        rows = run(args.n, args.repeats)
    print(f"chain of {args.n} adds on 1-element tensors, median of {args.repeats}, "
          f"{args.threads} threads")
    print("| framework | mode | µs per op | spread µs |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['framework']} | {r['mode']} | {r['us_per_op']:.2f} | {r['spread_us']:.2f} |")
    by = {(r["framework"], r["mode"]): r["us_per_op"] for r in rows}
    if ("pytorch", "forward") in by:
        for mode in ("forward", "forward+backward"):
            print(f"xpgrad / pytorch, {mode}: "
                  f"{by[('xpgrad', mode)] / by[('pytorch', mode)]:.2f}")


if __name__ == "__main__":
    main()
