"""Data-parallel training of the digits MLP on several processes (MPI).

    mpiexec -n 2 python examples/ddp_train.py

Every rank builds the same model; rank 0's weights are broadcast once; each rank trains on
its own shard of every epoch (DistributedSampler); before each optimizer step the gradients
are averaged across ranks (DistributedOptimizer), so the ranks stay identical. Rank 0
prints the progress, evaluates and writes the checkpoint. Run without mpiexec it trains on
one process, the same program.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


import engine
import engine.distributed as dist
import losses
import nn
import optim
from data import DataLoader, TensorDataset, load_digits, train_test_split


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64, help="per rank")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="runs/ddp_train")
    parser.add_argument("--smoke", action="store_true", help="tiny run for tests")
    args = parser.parse_args(argv)

    dist.init(seed=args.seed)                 # seeds args.seed + rank: dropout differs
    rank, world = dist.get_rank(), dist.get_world_size()
    log = print if rank == 0 else (lambda *a, **k: None)

    images, labels = load_digits()
    x = images.reshape(len(images), -1)       # (N, 64), in [0, 1]
    x_train, x_test, y_train, y_test = train_test_split(
        x, labels, test_size=0.2, stratify=labels, random_state=args.seed)
    if args.smoke:
        x_train, y_train, args.epochs = x_train[:256], y_train[:256], 1
    train = TensorDataset(x_train, y_train)
    sampler = dist.DistributedSampler(train, shuffle=True, seed=args.seed, drop_last=True)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                        device=args.device)

    model = nn.MLP([64, 128, 64, 10], activation="relu", dropout=0.1).to(args.device)
    dist.broadcast_parameters(model)
    opt = dist.DistributedOptimizer(optim.Adam(model.parameters(), lr=args.lr))
    log(f"{world} rank(s), {len(sampler)} training samples per rank, "
        f"global batch {args.batch_size * world}")

    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        model.train()
        start, total, count = time.perf_counter(), 0.0, 0
        for xb, yb in loader:
            opt.zero_grad()
            loss = losses.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            total, count = total + loss.item(), count + 1
        mean_loss = dist.allreduce_scalar(total) / dist.allreduce_scalar(count)
        log(f"epoch {epoch + 1:3d}  train loss {mean_loss:.4f}  "
            f"{time.perf_counter() - start:.2f} s")

    model.eval()
    with engine.no_grad():
        pred = model(engine.tensor(x_test, device=args.device)).argmax(axis=1).numpy()
    accuracy = float(losses.metrics.accuracy(y_test, pred))
    log(f"test accuracy {accuracy:.4f}")
    if rank == 0:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        engine.save({"model": model.state_dict(), "optimizer": opt.state_dict()},
                    out / "checkpoint.safetensors")
    return {"test_accuracy": accuracy, "world_size": world}


if __name__ == "__main__":
    main()
