"""The classic convolutional network of the articles on scikit-learn's 8×8 digits.

The articles' image classifier (PyTorch, 224×224 RGB photos)::

    Conv2d(3→64, 3×3, padding 1) → ReLU → MaxPool(2)
    → Conv2d(64→128, 3×3, padding 1) → ReLU → MaxPool(2)
    → flatten → Linear(→128) → ReLU → Linear(→10);  Adam, lr 0.001, cross-entropy

Here the images are 8×8 grey digits, so the first convolution has one input channel and
the images are used at their own size, neither upsampled nor padded: a 3×3 convolution
with padding 1 keeps the size, each 2×2 max-pool halves it, 8×8 → 4×4 → 2×2, and the first
Linear takes 128·2·2 = 512 features. That number is not written by hand: it is measured by
passing one dummy image through the convolutional part (the articles' 128·28·28 did not
match their own 224×224 input, which gives 128·56·56 after two poolings).

Pixels are normalized with the training set's mean and standard deviation (as the articles
normalize with ImageNet's). Beyond the articles' recipe: the learning rate decays along a
cosine to 0 (docs/formulas.md, F12), and the cross-entropy uses label smoothing 0.1 (the
target puts 0.9 + 0.1/10 on the true class and 0.1/10 on each other one), which keeps the
network from becoming over-confident on 1,300 training images (the smoothed training loss
cannot fall below about 0.5; the validation and test losses are plain cross-entropy).
Split, stratified by class: 72% training, 8% validation, 20% test.

    python examples/cnn_digits.py [--epochs 15] [--lr 1e-3] [--batch-size 32]
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


class ClassicCNN(nn.Module):
    """(N, C, H, W) images → conv-ReLU-pool twice → flatten → Linear-ReLU → Linear logits."""

    def __init__(self, in_channels: int, image_size: tuple[int, int], num_classes: int,
                 channels: tuple[int, int] = (64, 128), hidden: int = 128):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        # The size of the flattened features, measured on one dummy image.
        with engine.no_grad():
            n_features = self.features(engine.zeros(1, in_channels, *image_size)).shape[1]
        self.classifier = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def evaluate(model, loader) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean cross-entropy over ``loader``, the predicted classes and the true ones."""
    model.eval()
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
    parser = make_parser("cnn_digits", __doc__, epochs=15, lr=1e-3, batch_size=32)
    parser.add_argument("--channels", type=int, nargs=2, default=[64, 128],
                        help="channels of the two convolutions (default 64 128)")
    parser.add_argument("--hidden", type=int, default=128,
                        help="width of the hidden Linear layer (default 128)")
    parser.add_argument("--label-smoothing", type=float, default=0.1,
                        help="label smoothing of the training loss (default 0.1)")
    args = setup(parser.parse_args(argv))

    # ---- data: (N, 8, 8) images in [0, 1] -> (N, 1, 8, 8), normalized
    images, labels = load_digits()
    if args.smoke:
        images, labels = images[:200], labels[:200]
        args.channels, args.hidden = [4, 8], 16
    x = images[:, None, :, :]                                  # (N, 8, 8) -> (N, 1, 8, 8)
    x_rest, x_test, y_rest, y_test = train_test_split(x, labels, test_size=0.2,
                                                      stratify=labels, seed=args.seed)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.1,
                                                      stratify=y_rest, seed=args.seed)
    mean, std = x_train.mean(), x_train.std()
    x_train, x_val, x_test = ((a - mean) / std for a in (x_train, x_val, x_test))
    print(f"digits: {len(x_train)} training, {len(x_val)} validation, {len(x_test)} test "
          f"images of shape {x.shape[1:]}, 10 classes")
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size,
                              shuffle=True, device=args.device)
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=256, device=args.device)
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=256,
                             device=args.device)

    # ---- model and optimizer
    model = ClassicCNN(1, x.shape[2:], 10, tuple(args.channels), args.hidden)
    model.to(args.device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    print(model)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters")

    # ---- training
    history = History(args.out, args.epochs)
    run = Run(args, model=model, optimizer=optimizer, scheduler=scheduler, loader=train_loader,
              history=history)
    for epoch in run.epochs():
        sums = run.running(total=0.0, correct=0, seen=0)
        bar = progress(train_loader, f"epoch {epoch}/{args.epochs}", initial=run.batch)
        for step, (xb, yb) in enumerate(bar, start=run.batch):
            logits = model(xb)
            loss = losses.cross_entropy(logits, yb, label_smoothing=args.label_smoothing)
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
    history.plot(title="classic CNN on digits")

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
