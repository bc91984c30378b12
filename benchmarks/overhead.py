"""Per-op overhead: a chain of 1,000 adds on 1-element tensors, forward and
forward+backward, in µs per op, beside PyTorch CPU when it is installed.

    python benchmarks/overhead.py [--n 1000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


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


def run(n: int = 1000, repeats: int = 7) -> list[dict]:
    """Rows of {framework, mode, us_per_op, spread_us}."""
    rows = []
    makers = [("xpgrad", xpgrad_chain)]
    try:
        import torch

        torch.set_num_threads(1)
        makers.append(("pytorch", torch_chain))
    except ImportError:
        pass
    for name, make in makers:
        for mode, backward in (("forward", False), ("forward+backward", True)):
            median, spread = _time(make(n, backward), repeats)
            rows.append({"framework": name, "mode": mode, "us_per_op": median / n * 1e6,
                         "spread_us": spread / n * 1e6})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    rows = run(args.n, args.repeats)
    print(f"chain of {args.n} adds on 1-element tensors, median of {args.repeats}")
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
