"""The whole benchmark suite in one run, on every available device, beside PyTorch.

    python -m benchmarks [--out runs/benchmarks] [--repeats 10] [--smoke]

Times per-op overhead, the fused kernels, four training steps (forward + backward + Adam:
W1 MLP, W2 LSTM classifier, W3 Transformer encoder, W4 CNN) and a size sweep that shows
where the GPU overtakes the CPU. Every timed step has a warm-up first; GPU work is
synchronized before the clock stops; each figure is the median of the repeats with the
spread (max - min) beside it. Writes ``results.json``, ``results.md`` and ``results.png``
to ``--out``. Ratios measured in one run are what count; absolute times on a shared
machine are noise. Without a GPU the suite still runs and says so in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

# Before any OpenMP runtime loads (PyTorch's or Numba's): idle worker threads sleep instead
# of spinning, which on a shared 2-core machine otherwise slows both frameworks many-fold.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from benchmarks import workloads  # noqa: E402


def time_step(step, sync, warmup: int, repeats: int) -> tuple[float, float]:
    """Median and spread (max - min) in milliseconds of ``repeats`` synchronized calls."""
    for _ in range(warmup):
        step()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), max(samples) - min(samples)


def environment() -> dict:
    import numpy as np

    import engine

    env = {"python": platform.python_version(), "numpy": np.__version__,
           "machine": platform.machine(), "gpu": None}
    if engine.cuda_is_available():
        from engine import backend

        cp = backend.cupy_module()
        env["gpu"] = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    else:
        from engine import backend

        env["gpu_unavailable_reason"] = backend._cupy_error
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.cuda.is_available()
    except ImportError:
        env["torch"] = None
    return env


def xpgrad_devices(env) -> list[str]:
    return ["cpu"] + (["cuda"] if env["gpu"] else [])


def torch_devices(env) -> list[str]:
    if not env.get("torch"):
        return []
    return ["cpu"] + (["cuda"] if env.get("torch_cuda") else [])


def run_training(env, scale, warmup, repeats) -> list[dict]:
    rows = []
    for name, label in workloads.WORKLOADS.items():
        makers = [("xpgrad", d, workloads.xpgrad_step) for d in xpgrad_devices(env)]
        makers += [("pytorch", d, workloads.torch_step) for d in torch_devices(env)]
        for framework, device, make in makers:
            step, sync = make(name, device, scale)
            median, spread = time_step(step, sync, warmup, repeats)
            rows.append({"workload": name, "description": label, "framework": framework,
                         "device": device, "ms": median, "spread_ms": spread})
    return rows


def training_ratios(rows) -> list[dict]:
    """Per workload and device: xpgrad/PyTorch; per workload: xpgrad GPU/CPU."""
    get = {(r["workload"], r["framework"], r["device"]): r["ms"] for r in rows}
    out = []
    for name in workloads.WORKLOADS:
        for device in ("cpu", "cuda"):
            mine = get.get((name, "xpgrad", device))
            if mine is None:
                continue
            theirs = get.get((name, "pytorch", device))
            cpu = get.get((name, "xpgrad", "cpu"))
            out.append({"workload": name, "device": device, "xpgrad_ms": mine,
                        "pytorch_ms": theirs,
                        "xpgrad_over_pytorch": mine / theirs if theirs else None,
                        "gpu_over_cpu": mine / cpu if device == "cuda" else None})
    return out


def size_sweep(env, widths, warmup, repeats) -> list[dict]:
    """W1-shaped MLP steps of growing width on each device: where does the GPU win?"""
    rows = []
    for width in widths:
        for device in xpgrad_devices(env):
            step, sync = workloads.mlp_step(width, device)
            median, spread = time_step(step, sync, warmup, repeats)
            rows.append({"width": width, "device": device, "ms": median,
                         "spread_ms": spread})
    return rows


def crossover(sweep) -> int | None:
    """The smallest width at which the GPU step is faster than the CPU step."""
    by = {(r["width"], r["device"]): r["ms"] for r in sweep}
    for width in sorted({r["width"] for r in sweep}):
        if (width, "cuda") in by and by[(width, "cuda")] < by[(width, "cpu")]:
            return width
    return None


def _fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _table(rows, columns) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |")
    return lines


def markdown(results) -> str:
    env = results["environment"]
    lines = ["# xpgrad benchmarks", ""]
    lines.append(f"Python {env['python']}, NumPy {env['numpy']}, PyTorch "
                 f"{env.get('torch') or 'not installed'}.")
    if env["gpu"]:
        lines.append(f"GPU: {env['gpu']}.")
    else:
        lines.append("GPU: none on this machine "
                     f"({env.get('gpu_unavailable_reason') or 'CuPy not usable'}); "
                     "CPU figures only.")
    lines += ["", "## Per-op overhead (chain of 1,000 adds on 1-element tensors)", ""]
    lines += _table(results["overhead"], ["framework", "mode", "us_per_op", "spread_us"])
    if results.get("kernels"):
        lines += ["", "## Fused kernels", ""]
        lines += _table(results["kernels"], list(results["kernels"][0]))
    lines += ["", "## Training steps (forward + backward + Adam), ms", ""]
    lines += _table(results["training"], ["workload", "framework", "device", "ms",
                                          "spread_ms"])
    lines += ["", "Ratios (< 1: xpgrad faster than PyTorch; GPU/CPU < 1: GPU faster):", ""]
    lines += _table(results["ratios"], ["workload", "device", "xpgrad_ms", "pytorch_ms",
                                        "xpgrad_over_pytorch", "gpu_over_cpu"])
    lines += ["", "## Size sweep: MLP 784-w-w-10 step, batch 128, ms", ""]
    lines += _table(results["sweep"], ["width", "device", "ms", "spread_ms"])
    cross = results.get("crossover_width")
    lines.append("")
    if not env["gpu"]:
        lines.append("No GPU: no crossover to report.")
    elif cross is None:
        lines.append("The GPU did not overtake the CPU at any width measured.")
    else:
        lines.append(f"The GPU overtakes the CPU from width {cross}.")
    return "\n".join(lines) + "\n"


def plot(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    series = sorted({(r["framework"], r["device"]) for r in results["training"]})
    names = list(workloads.WORKLOADS)
    width = 0.8 / max(1, len(series))
    for i, (framework, device) in enumerate(series):
        ms = [next((r["ms"] for r in results["training"] if r["workload"] == n and
                    r["framework"] == framework and r["device"] == device), 0) for n in names]
        left.bar([k + i * width for k in range(len(names))], ms, width,
                 label=f"{framework} {device}")
    left.set_xticks([k + width * (len(series) - 1) / 2 for k in range(len(names))], names)
    left.set_yscale("log")
    left.set_ylabel("ms per training step")
    left.legend()
    left.set_title("training steps")
    for device in sorted({r["device"] for r in results["sweep"]}):
        pts = [(r["width"], r["ms"]) for r in results["sweep"] if r["device"] == device]
        right.plot(*zip(*pts), marker="o", label=f"xpgrad {device}")
    right.set_xscale("log", base=2)
    right.set_yscale("log")
    right.set_xlabel("MLP width")
    right.set_ylabel("ms per step")
    right.legend()
    right.set_title("size sweep")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/benchmarks")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 repeat (tests)")
    parser.add_argument("--skip-kernels", action="store_true")
    args = parser.parse_args(argv)
    scale = 0.05 if args.smoke else 1.0
    repeats = 1 if args.smoke else args.repeats
    warmup = 1 if args.smoke else args.warmup
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from benchmarks import overhead

    env = environment()
    results = {"environment": env, "smoke": args.smoke}
    results["overhead"] = overhead.run(n=50 if args.smoke else 1000, repeats=repeats)
    if not args.skip_kernels:
        from benchmarks import kernels

        results["kernels"] = kernels.run(smoke=args.smoke)
    results["training"] = run_training(env, scale, warmup, repeats)
    results["ratios"] = training_ratios(results["training"])
    widths = [16, 64] if args.smoke else [64, 128, 256, 512, 1024, 2048, 4096]
    results["sweep"] = size_sweep(env, widths, warmup, repeats)
    results["crossover_width"] = crossover(results["sweep"])
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(markdown(results))
    plot(results, out / "results.png")
    print(markdown(results))
    print(f"wrote {out / 'results.md'}, results.json and results.png")
    return results


if __name__ == "__main__":
    main()
