"""Data-parallel throughput: steps per second on 1 and 2 MPI ranks for W1 (MLP
784-256-256-10, forward + backward + Adam) at the same global batch of 128, and the time
per step spent in the gradient allreduce.

    python benchmarks/distributed.py            # launches mpiexec -n 1 and -n 2 itself

Each rank runs one BLAS/Numba thread, so 2 ranks use the same 2 cores as 1 rank with 2
threads would; the table also shows that 1-rank, 2-thread baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(steps: int, global_batch: int) -> None:
    import numpy as np

    import engine
    import engine.distributed as dist
    import losses
    import nn
    import optim

    dist.init(seed=0)
    rank, world = dist.get_rank(), dist.get_world_size()
    batch = global_batch // world
    rng = np.random.default_rng(rank)
    x = engine.tensor(rng.standard_normal((batch, 784)).astype(np.float32))
    y = engine.tensor(rng.integers(0, 10, batch))
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10))
    dist.broadcast_parameters(model)
    opt = dist.DistributedOptimizer(optim.Adam(model.parameters(), lr=1e-3))

    def step():
        opt.zero_grad()
        losses.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(10):   # warm-up (kernel compilation, allocator)
        step()
    dist.barrier()
    dist.communication_stats(reset=True)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    dist.barrier()
    seconds = time.perf_counter() - start
    comm = dist.communication_stats()["allreduce_seconds"]
    comm = dist.allreduce_scalar(comm, op="max")
    if rank == 0:
        print(json.dumps({"ranks": world, "batch_per_rank": batch,
                          "steps_per_second": steps / seconds,
                          "ms_per_step": seconds / steps * 1e3,
                          "allreduce_ms_per_step": comm / steps * 1e3}))


def launch(ranks: int, threads: int, steps: int, global_batch: int) -> dict:
    sys.path.insert(0, str(ROOT / "tests" / "distributed"))
    from mpi_util import mpiexec_command

    cmd = mpiexec_command(ranks)
    if cmd is None:
        raise SystemExit("needs mpi4py and mpiexec: pip install 'xpgrad[distributed]'")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads),
               PYTHONPATH=str(ROOT))
    out = subprocess.run(cmd + [sys.executable, __file__, "--worker", "--steps", str(steps),
                                "--global-batch", str(global_batch)],
                         capture_output=True, text=True, env=env, check=True, cwd=ROOT)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["threads_per_rank"] = threads
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--global-batch", type=int, default=128)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.steps, args.global_batch)
        return
    rows = [launch(1, 2, args.steps, args.global_batch),
            launch(1, 1, args.steps, args.global_batch),
            launch(2, 1, args.steps, args.global_batch)]
    print(f"W1 MLP 784-256-256-10, Adam, global batch {args.global_batch}, "
          f"{args.steps} timed steps")
    print("| ranks | threads/rank | batch/rank | steps/s | ms/step | allreduce ms/step |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['ranks']} | {r['threads_per_rank']} | {r['batch_per_rank']} | "
              f"{r['steps_per_second']:.1f} | {r['ms_per_step']:.2f} | "
              f"{r['allreduce_ms_per_step']:.3f} |")


if __name__ == "__main__":
    main()
