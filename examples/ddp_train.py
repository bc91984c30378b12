"""Data-parallel training of the digits MLP on several processes (MPI).

    mpiexec -n 2 python examples/ddp_train.py

Every rank builds the same model; rank 0's weights are broadcast once; each rank trains on
its own shard of every epoch (DistributedSampler); before each optimizer step the gradients
are averaged across ranks (DistributedOptimizer), so the ranks stay identical. Rank 0
prints the progress and writes the history. Run without mpiexec it trains on one process,
the same program.

Checkpoints: each rank writes its own every epoch (and every ``--checkpoint-every N``
batches), ``checkpoint.safetensors`` for rank 0 and ``checkpoint.rank<r>.safetensors``
for the others: the weights and optimizer state agree across ranks, but each rank has its
own random state (dropout) and its own shard order. ``--resume`` with the same number of
ranks continues all of them from the same step.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import engine
import engine.distributed as dist
import losses
import nn
import optim
from common import DefaultEpochs, History, Run, add_resume_flags
from data import DataLoader, TensorDataset, load_digits, train_test_split


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=DefaultEpochs(15),
                        help="passes over the training data (default 15; 1 with --smoke)")
    parser.add_argument("--batch-size", type=int, default=64, help="per rank")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="runs/ddp_train")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run for tests (one epoch unless --epochs is given)")
    add_resume_flags(parser)
    args = parser.parse_args(argv)

    dist.init(seed=args.seed)                 # seeds args.seed + rank: dropout differs
    rank, world = dist.get_rank(), dist.get_world_size()
    log = print if rank == 0 else (lambda *a, **k: None)

    images, labels = load_digits()
    x = images.reshape(len(images), -1)       # (N, 64), in [0, 1]
    x_train, x_test, y_train, y_test = train_test_split(
        x, labels, test_size=0.2, stratify=labels, random_state=args.seed)
    if args.smoke:
        x_train, y_train = x_train[:256], y_train[:256]
        args.epochs = 1 if isinstance(args.epochs, DefaultEpochs) else args.epochs
    args.epochs = int(args.epochs)
    train = TensorDataset(x_train, y_train)
    sampler = dist.DistributedSampler(train, shuffle=True, seed=args.seed, drop_last=True)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                        device=args.device)

    model = nn.MLP([64, 128, 64, 10], activation="relu", dropout=0.1).to(args.device)
    dist.broadcast_parameters(model)
    opt = dist.DistributedOptimizer(optim.Adam(model.parameters(), lr=args.lr))
    log(f"{world} rank(s), {len(sampler)} training samples per rank, "
        f"global batch {args.batch_size * world}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    history = History(out, args.epochs)
    name = "checkpoint.safetensors" if rank == 0 else f"checkpoint.rank{rank}.safetensors"
    run = Run(args, model=model, optimizer=opt, loader=loader, history=history,
              path=out / name)
    if dist.allreduce_scalar(run.step, "min") != dist.allreduce_scalar(run.step, "max"):
        raise RuntimeError(f"--resume: the ranks' checkpoints in {out} are from different "
                           f"steps (rank {rank}: step {run.step}); start afresh")

    for epoch in run.epochs():
        sampler.set_epoch(epoch - 1)
        model.train()
        sums = run.running(total=0.0, count=0)
        for xb, yb in loader:
            opt.zero_grad()
            loss = losses.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            sums.total, sums.count = sums.total + loss.item(), sums.count + 1
            run.batch_done()
        mean_loss = dist.allreduce_scalar(sums.total) / dist.allreduce_scalar(sums.count)
        history.log(epoch, echo=rank == 0, train_loss=mean_loss)
        run.epoch_done()

    model.eval()
    with engine.no_grad():
        pred = model(engine.tensor(x_test, device=args.device)).argmax(dim=1).numpy()
    accuracy = float(losses.metrics.accuracy(y_test, pred))
    log(f"test accuracy {accuracy:.4f}")
    results = {"test_accuracy": accuracy, "world_size": world}
    if rank == 0:
        history.save_json(test=results)
    return results


if __name__ == "__main__":
    main()
