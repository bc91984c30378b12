"""The fused kernels: reference formula vs fused (Numba) vs PyTorch, forward and
forward + backward, with memory throughput (GB/s) or, for attention, GFLOP/s; and the
first-call compile time of the Numba kernels with an empty and with a warm cache.

    python benchmarks/kernels.py [--repeats 5] [--smoke] [--json out.json]

Workloads (float32): softmax 4096×1024, cross-entropy 4096×1000, layer norm 4096×1024
(affine), attention B=8, H=8, T=256, D=64 (causal and not). Each figure is the median of
``repeats`` timed calls after a warm-up. GB/s counts the bytes an ideal kernel must move
(each input read once, each output written once); attention GFLOP/s counts the matrix
products of the full (unmasked) scores, 4·B·H·T²·D forward and 12·B·H·T²·D forward +
backward, also for the causal case. ``vs_reference`` is reference time / fused time and
``vs_pytorch`` PyTorch time / fused time (above 1: fused is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Idle OpenMP threads (Numba's and PyTorch's pools) sleep rather than spin: on a shared
# machine spinning pools steal the cores the timed work needs. Read when a pool starts, so
# set before PyTorch or the kernels load; both frameworks run under the same setting.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KEYS = ("kernel", "shape", "pass", "impl", "device", "ms", "spread_ms", "throughput",
        "unit", "vs_reference", "vs_pytorch")


def _time(fn, sync, repeats: int, warmup: int = 1) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), max(samples) - min(samples)


# ---------------------------------------------------------------- workloads
def _sizes(smoke: bool) -> dict:
    if smoke:
        return dict(softmax=(64, 128), ce=(64, 100), ln=(64, 128), attn=(1, 2, 16, 8))
    return dict(softmax=(4096, 1024), ce=(4096, 1000), ln=(4096, 1024), attn=(8, 8, 256, 64))


def _cases(smoke: bool) -> list[dict]:
    """Each case: inputs (NumPy, float32), an xpgrad and a PyTorch function, the size."""
    s = _sizes(smoke)
    rng = np.random.default_rng(0)
    f32 = np.float32
    cases = []
    n, c = s["softmax"]
    cases.append(dict(kernel="softmax", shape=f"{n}x{c}", arrays=[rng.standard_normal((n, c))],
                      ours=lambda e, x: e.softmax(x, dim=-1),
                      theirs=lambda t, x: t.softmax(x, dim=-1),
                      bytes_f=2 * n * c * 4, bytes_fb=5 * n * c * 4))
    n, c = s["ce"]
    target = rng.integers(0, c, n)
    cases.append(dict(kernel="cross_entropy", shape=f"{n}x{c}",
                      arrays=[rng.standard_normal((n, c))],
                      ours=lambda e, x: e.cross_entropy(x, target),
                      theirs=lambda t, x: t.nn.functional.cross_entropy(
                          x, t.as_tensor(target)),
                      bytes_f=n * c * 4, bytes_fb=3 * n * c * 4))
    n, c = s["ln"]
    cases.append(dict(kernel="layer_norm", shape=f"{n}x{c} affine",
                      arrays=[rng.standard_normal((n, c)), rng.standard_normal(c),
                              rng.standard_normal(c)],
                      ours=lambda e, x, w, b: e.layer_norm(x, x.shape[-1], w, b),
                      theirs=lambda t, x, w, b: t.nn.functional.layer_norm(
                          x, (x.shape[-1],), w, b),
                      bytes_f=2 * n * c * 4, bytes_fb=5 * n * c * 4))
    b, h, t_, d = s["attn"]
    flops = 4 * b * h * t_ * t_ * d
    for causal in (False, True):
        cases.append(dict(
            kernel="attention" + (" causal" if causal else ""), shape=f"B{b} H{h} T{t_} D{d}",
            arrays=[rng.standard_normal((b, h, t_, d)) for _ in range(3)],
            ours=lambda e, q, k, v, causal=causal: e.scaled_dot_product_attention(
                q, k, v, is_causal=causal),
            theirs=lambda t, q, k, v, causal=causal: t.nn.functional.scaled_dot_product_attention(
                q, k, v, is_causal=causal),
            flops_f=flops, flops_fb=3 * flops))
    for case in cases:
        case["arrays"] = [a.astype(f32) for a in case["arrays"]]
    return cases


def _xpgrad_step(engine, case, device, backward: bool):
    arrays = [engine.tensor(a, device=device) for a in case["arrays"]]
    with engine.no_grad():
        out = case["ours"](engine, *arrays)
    upstream = engine.tensor(np.random.default_rng(1).standard_normal(out.shape)
                             .astype(np.float32), device=device)

    def forward():
        with engine.no_grad():
            case["ours"](engine, *arrays)

    def forward_backward():
        leaves = [a.detach().requires_grad_() for a in arrays]
        y = case["ours"](engine, *leaves)
        y.backward(upstream)

    return forward_backward if backward else forward


def _torch_step(torch, case, device, backward: bool):
    arrays = [torch.tensor(a, device=device) for a in case["arrays"]]
    with torch.no_grad():
        out = case["theirs"](torch, *arrays)
    upstream = torch.tensor(np.random.default_rng(1).standard_normal(tuple(out.shape))
                            .astype(np.float32), device=device)

    def forward():
        with torch.no_grad():
            case["theirs"](torch, *arrays)

    def forward_backward():
        leaves = [a.detach().requires_grad_() for a in arrays]
        y = case["theirs"](torch, *leaves)
        y.backward(upstream)

    return forward_backward if backward else forward


def _throughput(case, backward: bool, ms: float) -> tuple[float, str]:
    if "flops_f" in case:
        flops = case["flops_fb" if backward else "flops_f"]
        return round(flops / ms / 1e6, 1), "GFLOP/s"
    nbytes = case["bytes_fb" if backward else "bytes_f"]
    return round(nbytes / ms / 1e6, 1), "GB/s"


def _row(case, pass_, impl, device, ms, spread, backward) -> dict:
    thr, unit = _throughput(case, backward, ms)
    return dict(kernel=case["kernel"], shape=case["shape"], pass_=pass_, impl=impl,
                device=device, ms=round(ms, 3), spread_ms=round(spread, 3), throughput=thr,
                unit=unit, vs_reference=None, vs_pytorch=None)


def time_kernels(smoke: bool = False, repeats: int = 5) -> list[dict]:
    """One row per (kernel, pass, implementation, device)."""
    import engine

    devices = ["cpu"] + (["cuda"] if engine.cuda_is_available() else [])
    try:
        import torch
    except ImportError:
        torch = None
    rows = []
    for case in _cases(smoke):
        for backward in (False, True):
            pass_ = "forward+backward" if backward else "forward"
            for device in devices:
                sync = (lambda d=device: engine.synchronize(d)) if device != "cpu" else \
                    (lambda: None)
                times = {}
                for impl in ("reference", "fused"):
                    with engine.use_fused(impl == "fused"):
                        step = _xpgrad_step(engine, case, device, backward)
                        times[impl] = _time(step, sync, repeats)
                if torch is not None and (device == "cpu" or torch.cuda.is_available()):
                    tsync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
                    times["pytorch"] = _time(_torch_step(torch, case, device, backward),
                                             tsync, repeats)
                for impl, (ms, spread) in times.items():
                    row = _row(case, pass_, impl, device, ms, spread, backward)
                    if impl == "fused":
                        row["vs_reference"] = round(times["reference"][0] / ms, 2)
                        if "pytorch" in times:
                            row["vs_pytorch"] = round(times["pytorch"][0] / ms, 2)
                    rows.append(row)
    return [{("pass" if k == "pass_" else k): v for k, v in r.items()} for r in rows]


# ---------------------------------------------------------------- compile time
_COMPILE_SNIPPET = """
import time
t0 = time.perf_counter()
import numpy as np, engine
t1 = time.perf_counter()
x = engine.tensor(np.ones((3, 8), dtype=np.float32), requires_grad=True)
w = engine.tensor(np.ones(8, dtype=np.float32), requires_grad=True)
q = engine.tensor(np.ones((1, 2, 3, 8), dtype=np.float32), requires_grad=True)
engine.softmax(x).sum().backward()
engine.log_softmax(x).sum().backward()
engine.cross_entropy(x, np.array([0, 1, 2])).backward()
engine.layer_norm(x, 8, w, w).sum().backward()
engine.scaled_dot_product_attention(q, q, q, is_causal=True).sum().backward()
print(t1 - t0, time.perf_counter() - t1)
"""


def compile_times() -> list[dict]:
    """First call of every CPU kernel (float32, forward and backward) in a fresh process:
    with an empty Numba cache (compiles, then writes the cache) and with that cache."""
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        for label in ("empty cache", "warm cache"):
            out = subprocess.run([sys.executable, "-c", _COMPILE_SNIPPET], env=env,
                                 capture_output=True, text=True, check=True).stdout
            _, first_calls = (float(v) for v in out.split())
            rows.append(dict(kernel="all CPU kernels (first call)", shape="float32",
                             pass_=f"compile, {label}", impl="fused", device="cpu",
                             ms=round(first_calls * 1e3, 1), spread_ms=None, throughput=None,
                             unit=None, vs_reference=None, vs_pytorch=None))
    return [{("pass" if k == "pass_" else k): v for k, v in r.items()} for r in rows]


def run(smoke: bool = False, repeats: int | None = None,
        compile_time: bool | None = None) -> list[dict]:
    """Every kernel row, then the two compile-time rows (same keys: :data:`KEYS`).
    ``compile_time`` defaults to ``not smoke``: compiling from an empty cache takes
    seconds, too long for a smoke run."""
    repeats = repeats or (2 if smoke else 5)
    rows = time_kernels(smoke, repeats)
    if compile_time if compile_time is not None else not smoke:
        rows += compile_times()
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(KEYS) + " |", "|" + "---|" * len(KEYS)]
    for r in rows:
        lines.append("| " + " | ".join("" if r[k] is None else str(r[k]) for k in KEYS) + " |")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (a quick check)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--no-compile-time", action="store_true",
                        help="skip the compile-time rows (two fresh processes)")
    args = parser.parse_args(argv)
    rows = run(smoke=args.smoke, repeats=2 if args.smoke else args.repeats,
               compile_time=not args.no_compile_time)
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
