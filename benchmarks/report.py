"""The benchmark's results as Markdown (the whole run, and the comparison table the README
shows) and as a plot."""

from __future__ import annotations

from pathlib import Path

from benchmarks import workloads

COMPARISON_COLUMNS = ("workload", "unit", "xpgrad quiet", "PyTorch quiet",
                      "xpgrad/PyTorch quiet", "xpgrad busy", "PyTorch busy",
                      "xpgrad/PyTorch busy")
OVERHEAD_LABELS = {"forward": "per-op overhead, forward",
                   "forward+backward": "per-op overhead, forward + backward"}


def comparison_rows(results) -> list[dict]:
    """W1-W4 (ms per training step) and the per-op overhead (µs per op) on the CPU: each
    framework's median, quiet and busy, and xpgrad / PyTorch (above 1: xpgrad is slower)."""
    times = {}
    for r in results["training"]:
        if r["device"] == "cpu":
            times[r["workload"], r["framework"], r["phase"]] = r["ms"]
    for r in results["overhead"]:
        times[r["mode"], r["framework"], r["phase"]] = r["us_per_op"]
    labels = {name: f"{name} {label}" for name, label in workloads.WORKLOADS.items()}
    labels.update(OVERHEAD_LABELS)
    rows = []
    for key, label in labels.items():
        row = {"workload": label, "unit": "µs/op" if key in OVERHEAD_LABELS else "ms/step"}
        for phase in ("quiet", "busy"):
            mine = times.get((key, "xpgrad", phase))
            theirs = times.get((key, "pytorch", phase))
            row[f"xpgrad {phase}"] = mine
            row[f"PyTorch {phase}"] = theirs
            row[f"xpgrad/PyTorch {phase}"] = mine / theirs if mine and theirs else None
        rows.append(row)
    return rows


def _fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _table(rows, columns) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = [f"{r[c]:.2f}" if "/" in c and r.get(c) is not None else _fmt(r.get(c))
                 for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _threads(report: dict) -> str:
    """One framework's thread report in words."""
    parts = []
    for key, name in (("blas", "BLAS"), ("openmp", "OpenMP"), ("numba", "Numba"),
                      ("torch_intra_op", "intra-op"), ("torch_inter_op", "inter-op")):
        value = report.get(key)
        if isinstance(value, list):
            value = "/".join(str(v) for v in sorted(set(value))) or None
        if value is not None:
            parts.append(f"{name} {value}")
    parts.append(f"OMP_NUM_THREADS {report.get('OMP_NUM_THREADS') or 'unset'}")
    parts.append(f"OMP_WAIT_POLICY {report.get('OMP_WAIT_POLICY') or 'unset'}")
    return ", ".join(parts)


def _loadavg(values) -> str:
    return "unknown" if values is None else f"{values[0]:.2f}"


def conditions(results) -> str:
    """The paragraph above the comparison table: threads, load, hogs, repeats."""
    threads = results["threads"]
    names = {"xpgrad": "xpgrad", "pytorch": "PyTorch"}
    used = "; ".join(f"{names[f]}: {_threads(threads[f])}" for f in names if f in threads)
    n = threads["requested"]
    text = [f"{n} thread{'s' if n != 1 else ''} for each framework, each in a process of its "
            f"own ({used}). Each figure is the median of {results['repeats']} timed runs after "
            f"warm-up, the frameworks taking turns (a pause of {results['settle']} s, one "
            f"untimed run, up to {results['block']} timed runs back to back); "
            f"xpgrad/PyTorch above 1: "
            f"xpgrad is slower."]
    for phase in results["phases"]:
        load = (f"load average {_loadavg(phase['loadavg_start'])} at the start, "
                f"{_loadavg(phase['loadavg_end'])} at the end")
        if phase["phase"] == "quiet":
            text.append(f"Quiet: the machine as it was, {load}.")
        else:
            hogs = phase["hog_processes"]
            text.append(f"Busy: {hogs} busy-loop process{'es' if hogs != 1 else ''} "
                        f"started by the benchmark, which got {phase['hog_cores']} cores on "
                        f"average; {load}.")
    return " ".join(text)


def comparison_markdown(results) -> str:
    """The conditions and the comparison table, ready to paste into the README."""
    lines = [conditions(results), ""]
    lines += _table(results["comparison"], COMPARISON_COLUMNS)
    return "\n".join(lines) + "\n"


def markdown(results) -> str:
    env = results["environment"]
    lines = ["# xpgrad benchmarks", ""]
    lines.append(f"Python {env['python']}, NumPy {env['numpy']}, PyTorch "
                 f"{env.get('torch') or 'not installed'}, {env['cores']} usable cores.")
    if env["gpu"]:
        lines.append(f"GPU: {env['gpu']}.")
    else:
        lines.append("GPU: none on this machine "
                     f"({env.get('gpu_unavailable_reason') or 'CuPy not usable'}); "
                     "CPU figures only.")
    lines += ["", "## xpgrad vs PyTorch on the CPU, quiet and busy", ""]
    lines.append(comparison_markdown(results))
    lines += ["## Training steps (forward + backward + Adam), ms", ""]
    lines += _table(results["training"], ["phase", "workload", "framework", "device", "ms",
                                          "spread_ms"])
    lines += ["", "## Per-op overhead (chain of adds on 1-element tensors)", ""]
    lines += _table(results["overhead"], ["phase", "framework", "mode", "us_per_op",
                                          "spread_us"])
    if env["gpu"]:
        lines += ["", "Quiet ratios per device (< 1: xpgrad faster than PyTorch; GPU/CPU "
                  "< 1: GPU faster):", ""]
        lines += _table(results["ratios"], ["workload", "device", "xpgrad_ms", "pytorch_ms",
                                            "xpgrad_over_pytorch", "gpu_over_cpu"])
    if results.get("kernels"):
        lines += ["", f"## Fused kernels ({results['threads']['requested']} threads, "
                  "both frameworks in this process)", ""]
        lines += _table(results["kernels"], list(results["kernels"][0]))
    if "sweep" in results:
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

    sweep = results.get("sweep")
    fig, axes = plt.subplots(1, 2 if sweep else 1, figsize=(12 if sweep else 7, 4.5),
                             squeeze=False)
    left = axes[0][0]
    series = sorted({(r["framework"], r["device"], r["phase"]) for r in results["training"]})
    names = list(workloads.WORKLOADS)
    width = 0.8 / max(1, len(series))
    for i, (framework, device, phase) in enumerate(series):
        ms = [next((r["ms"] for r in results["training"] if r["workload"] == n and
                    (r["framework"], r["device"], r["phase"]) == (framework, device, phase)),
                   0) for n in names]
        left.bar([k + i * width for k in range(len(names))], ms, width,
                 label=f"{framework} {device} {phase}")
    left.set_xticks([k + width * (len(series) - 1) / 2 for k in range(len(names))], names)
    left.set_yscale("log")
    left.set_ylabel("ms per training step")
    left.legend(fontsize="small")
    left.set_title(f"training steps, {results['threads']['requested']} threads")
    if sweep:
        right = axes[0][1]
        for device in sorted({r["device"] for r in sweep}):
            pts = [(r["width"], r["ms"]) for r in sweep if r["device"] == device]
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
