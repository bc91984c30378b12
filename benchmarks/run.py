"""The whole benchmark suite in one run, on every available device, beside PyTorch.

    python -m benchmarks [--threads N] [--hogs 1] [--out runs/benchmarks] [--repeats 20]
                         [--smoke] [--skip-kernels] [--skip-sweep]

xpgrad against PyTorch: four training steps (forward + backward + Adam: W1 MLP, W2 LSTM
classifier, W3 Transformer encoder, W4 CNN) and the per-op overhead, each framework in a
worker process of its own with the same thread count in every pool (``--threads``, default
the usable cores: OpenMP, OpenBLAS, MKL, Numba, PyTorch's intra-op and inter-op pools), in
two phases:

- quiet: the machine as it is;
- busy: ``--hogs`` busy-loop processes, started by the benchmark before the phase and
  stopped after it, compete for the cores, as other people's work does on a shared machine.

The frameworks take turns in blocks (:func:`alternate`: a few steps of xpgrad back to back,
then a few of PyTorch, ...), so a change in the machine's load hits both alike while each
runs its steps as a training loop does. The load average at the start and the end of
each phase and the CPU time the hogs got are recorded beside the figures. The busy phase
times the CPU only. Then, in this process with the same threads: the fused kernels and a
size sweep that shows where the GPU overtakes the CPU. Every timed step has a warm-up
first; GPU work is synchronized before the clock stops; each figure is the median of the
repeats with the spread (max - min) beside it. Writes ``results.json``, ``results.md``,
``results.png`` and ``comparison.md`` (the README's table) to ``--out``. Ratios measured
in one run are what count; absolute times on a shared machine are noise. Without a GPU
the suite still runs and says so.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import platform
import statistics
import time
from pathlib import Path

from benchmarks import machine, report, workloads
from benchmarks.worker import Worker

PHASES = ("quiet", "busy")


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
    from engine import backend

    env = {"python": platform.python_version(), "numpy": np.__version__,
           "machine": platform.machine(), "cores": machine.usable_cores(), "gpu": None}
    if engine.cuda_is_available():
        cp = backend.cupy_module()
        env["gpu"] = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    else:
        env["gpu_unavailable_reason"] = backend._cupy_error
    env["torch"] = None
    if importlib.util.find_spec("torch") is not None:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.cuda.is_available()
    return env


def devices(env, framework: str, phase: str) -> list[str]:
    """The devices a framework is timed on in a phase (the busy phase: the CPU only)."""
    gpu = env["gpu"] if framework == "xpgrad" else env.get("torch_cuda")
    return ["cpu"] + (["cuda"] if gpu and phase == "quiet" else [])


# Turns: a worker's turn is a pause of SETTLE seconds, one untimed step, then up to BLOCK
# timed steps back to back. A framework's idle threads may go on spinning after its step
# (PyTorch's OpenMP threads spin for milliseconds); with turns of one step each, that spin
# fell on the other framework's next timed step (measured on W4: PyTorch's threads took
# about 5 ms of CPU from each of xpgrad's steps), and each framework's steps ran with its
# own threads cold, unlike in a training loop. The pause lets the spin end; the untimed
# step wakes the framework's own threads.
BLOCK = 5
SETTLE = 0.05


def alternate(workers: dict, repeats: int, block: int = BLOCK, settle: float = SETTLE,
              **request) -> dict[str, tuple[float, float]]:
    """Each worker prepares the same step; then the workers take turns until each has
    ``repeats`` timed runs, a turn being a pause of ``settle`` seconds, one untimed run
    and up to ``block`` timed runs back to back: framework -> (median, spread) in
    seconds."""
    for worker in workers.values():
        worker.prepare(**request)
    samples = {framework: [] for framework in workers}
    for done in range(0, repeats, block):
        for framework, worker in workers.items():
            time.sleep(settle)
            samples[framework] += worker.time(runs=min(block, repeats - done), lead=1)
    return {f: (statistics.median(s), max(s) - min(s)) for f, s in samples.items()}


def measure_phase(workers: dict, env, phase: str, scale: float, warmup: int, repeats: int,
                  chain: int) -> tuple[list[dict], list[dict]]:
    """Training-step rows and overhead rows of one phase."""
    training, overhead = [], []
    for name, label in workloads.WORKLOADS.items():
        for device in ("cpu", "cuda"):
            on = {f: w for f, w in workers.items() if device in devices(env, f, phase)}
            if not on:
                continue
            timed = alternate(on, repeats, kind="train", workload=name, device=device,
                              scale=scale, warmup=warmup)
            training += [{"phase": phase, "workload": name, "description": label,
                          "framework": f, "device": device, "ms": median * 1e3,
                          "spread_ms": spread * 1e3} for f, (median, spread) in timed.items()]
    for mode, backward in (("forward", False), ("forward+backward", True)):
        timed = alternate(workers, repeats, kind="overhead", backward=backward, n=chain)
        overhead += [{"phase": phase, "framework": f, "mode": mode,
                      "us_per_op": median / chain * 1e6, "spread_us": spread / chain * 1e6}
                     for f, (median, spread) in timed.items()]
    return training, overhead


def run_phases(env, args, scale: float, warmup: int, repeats: int, chain: int) -> dict:
    """Both frameworks in their worker processes through the phases in ``args.phases``."""
    frameworks = ["xpgrad"] + (["pytorch"] if env["torch"] else [])
    out = {"phases": [], "training": [], "overhead": []}
    with contextlib.ExitStack() as stack:
        workers = {f: stack.enter_context(Worker(f, args.threads, args.omp_wait_policy))
                   for f in frameworks}
        out["threads"] = {f: w.threads() for f, w in workers.items()}
        for phase in args.phases:
            busy = phase == "busy"
            hog = machine.CpuHog(args.hogs, settle=0.2 if args.smoke else 1.0)
            with hog if busy else contextlib.nullcontext():
                record = {"phase": phase, "loadavg_start": machine.load_average()}
                training, overhead = measure_phase(workers, env, phase, scale, warmup,
                                                   repeats, chain)
                record["loadavg_end"] = machine.load_average()
            out["phases"].append({**record, **(hog.record() if busy else {})})
            out["training"] += training
            out["overhead"] += overhead
    return out


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
        for device in devices(env, "xpgrad", "quiet"):
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


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/benchmarks")
    parser.add_argument("--threads", type=int, default=machine.usable_cores(),
                        help="threads of every pool, the same for both frameworks (default: "
                             f"the usable cores, {machine.usable_cores()} here)")
    parser.add_argument("--hogs", type=int, default=1,
                        help="busy-loop processes during the busy phase (default 1)")
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    parser.add_argument("--omp-wait-policy", choices=["PASSIVE", "ACTIVE"],
                        help="OMP_WAIT_POLICY for both frameworks (default: each its own)")
    parser.add_argument("--repeats", type=int, default=20,
                        help="timed runs of each step per framework (default 20)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 repeat (tests)")
    parser.add_argument("--skip-kernels", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.hogs < 0:
        parser.error(f"--threads must be >= 1 and --hogs >= 0, got {args.threads} "
                     f"and {args.hogs}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    scale = 0.05 if args.smoke else 1.0
    repeats = 1 if args.smoke else args.repeats
    warmup = 1 if args.smoke else args.warmup
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    env = environment()
    results = {"environment": env, "smoke": args.smoke, "repeats": repeats,
               "block": BLOCK, "settle": SETTLE,
               "warmup": warmup, "hogs": args.hogs}
    results.update(run_phases(env, args, scale, warmup, repeats, 50 if args.smoke else 1000))
    results["threads"]["requested"] = args.threads
    results["threads"]["omp_wait_policy"] = args.omp_wait_policy
    results["comparison"] = report.comparison_rows(results)
    results["ratios"] = training_ratios([r for r in results["training"]
                                         if r["phase"] == "quiet"])
    import engine.kernels.cpu  # noqa: F401  (loads Numba now, so its threads are set too)

    with machine.threads(args.threads) as in_process:
        results["threads"]["in_process"] = in_process
        if not args.skip_kernels:
            from benchmarks import kernels

            results["kernels"] = kernels.run(smoke=args.smoke)
        if not args.skip_sweep:
            widths = [16, 64] if args.smoke else [64, 128, 256, 512, 1024, 2048, 4096]
            results["sweep"] = size_sweep(env, widths, warmup, repeats)
            results["crossover_width"] = crossover(results["sweep"])
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(report.markdown(results))
    (out / "comparison.md").write_text(report.comparison_markdown(results))
    report.plot(results, out / "results.png")
    print(report.markdown(results))
    print(f"wrote {out / 'results.md'}, comparison.md, results.json and results.png")
    return results


if __name__ == "__main__":
    main()
