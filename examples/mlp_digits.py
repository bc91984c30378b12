"""A multi-layer perceptron on scikit-learn's handwritten digits.

Each 8×8 image (pixel intensities in [0, 1]) is flattened to 64 numbers and classified
into 0..9 by

    x (64) → Linear(64, 256) → ReLU → Dropout → Linear(256, 128) → ReLU → Dropout
           → Linear(128, 10) → logits z,    ŷ = softmax(z)    (F7, F8)

trained with the cross-entropy J = -(1/m) Σᵢ log ŷ_{yᵢ} (F5) and Adam (F11), the learning
rate decaying along a cosine to 0 (F12), each pixel standardized with the training set's
mean and standard deviation (F-numbers: the formulas of docs/formulas.md). The 1,797
digits ship with scikit-learn (nothing is downloaded); they are split, stratified by
class, into 72% training, 8% validation and 20% test.

    python examples/mlp_digits.py [--epochs 40] [--lr 1e-3] [--batch-size 32] [--hidden 256 128]
"""

from __future__ import annotations

import numpy as np

import engine
import losses
import nn
import optim
from common import History, Run, make_parser, print_report, progress, save_graph, setup
from data import DataLoader, TensorDataset, load_digits, train_test_split
from losses import metrics


def build_model(sizes: list[int], dropout: float) -> nn.Module:
    """Linear → ReLU → Dropout between consecutive sizes; raw logits at the end."""
    layers = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(sizes) - 2:
            layers += [nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


def evaluate(model, loader) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean cross-entropy over ``loader``, the predicted classes and the true ones."""
    model.eval()                                   # dropout off
    total, preds, targets = 0.0, [], []
    with engine.no_grad():
        for xb, yb in loader:
            logits = model(xb)
            total += losses.cross_entropy(logits, yb, reduction="sum").item()
            preds.append(logits.argmax(dim=1).numpy())
            targets.append(yb.numpy())
    model.train()
    y_true = np.concatenate(targets)
    return total / len(y_true), np.concatenate(preds), y_true


def main(argv=None) -> dict:
    parser = make_parser("mlp_digits", __doc__, epochs=40, lr=1e-3, batch_size=32)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 128],
                        help="hidden layer sizes (default 256 128)")
    parser.add_argument("--dropout", type=float, default=0.3, help="dropout (default 0.3)")
    args = setup(parser.parse_args(argv))

    # ---- data: (1797, 8, 8) images in [0, 1] -> (N, 64) vectors
    images, labels = load_digits()
    if args.smoke:
        images, labels = images[:200], labels[:200]
        args.hidden = [16]
    x = images.reshape(len(images), -1)
    x_rest, x_test, y_rest, y_test = train_test_split(x, labels, test_size=0.2,
                                                      stratify=labels, seed=args.seed)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.1,
                                                      stratify=y_rest, seed=args.seed)
    # standardize each pixel with the training set's mean and std (a constant pixel, std 0,
    # is left centred): inputs of unit scale make the first layer's init and Adam's steps fit
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, np.float32(1.0))
    x_train, x_val, x_test = ((a - mean) / std for a in (x_train, x_val, x_test))
    print(f"digits: {len(x_train)} training, {len(x_val)} validation, {len(x_test)} test "
          f"images of {x.shape[1]} pixels, 10 classes")
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size,
                              shuffle=True, device=args.device)
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=256, device=args.device)
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=256,
                             device=args.device)

    # ---- model and optimizer
    model = build_model([x.shape[1], *args.hidden, 10], args.dropout).to(args.device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    # the learning rate decays from lr to 0 along half a cosine over the epochs (F12)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    print(model)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters")

    # ---- training (with --resume: from the checkpoint, which each epoch rewrites)
    history = History(args.out, args.epochs)
    run = Run(args, model=model, optimizer=optimizer, scheduler=scheduler,
              loader=train_loader, history=history)
    for epoch in run.epochs():
        sums = run.running(total=0.0, correct=0, seen=0)
        bar = progress(train_loader, f"epoch {epoch}/{args.epochs}", initial=run.batch)
        for step, (xb, yb) in enumerate(bar, start=run.batch):
            logits = model(xb)
            loss = losses.cross_entropy(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            if epoch == 1 and step == 0:
                save_graph(loss, model, args.out)
            optimizer.step()
            sums.total += loss.item() * len(yb)
            sums.correct += int((logits.argmax(dim=1).numpy() == yb.numpy()).sum())
            sums.seen += len(yb)
            bar.set_postfix(loss=f"{sums.total / sums.seen:.4f}")
            run.batch_done()
        scheduler.step()
        val_loss, val_pred, val_true = evaluate(model, val_loader)
        history.log(epoch, train_loss=sums.total / sums.seen, val_loss=val_loss,
                    train_acc=sums.correct / sums.seen,
                    val_acc=metrics.accuracy(val_true, val_pred))
        run.epoch_done()
    history.plot(title="MLP on digits")

    # ---- test
    test_loss, test_pred, test_true = evaluate(model, test_loader)
    results = {
        "test_loss": test_loss,
        "test_accuracy": metrics.accuracy(test_true, test_pred),
        "test_macro_f1": metrics.f1_score(test_true, test_pred, average="macro"),
        "seconds_per_epoch": history.seconds_per_epoch,
    }
    history.save_json(test=results)
    print_report("test", results, metrics.confusion_matrix(test_true, test_pred, 10))
    print(f"\nwrote {args.out / 'curves.png'}, {args.out / 'checkpoint.safetensors'}")
    return results


if __name__ == "__main__":
    main()
