"""A small Vision Transformer (ViT) on scikit-learn's handwritten digits.

"An image is worth 16×16 words" (Dosovitskiy et al., 2020), scaled down to 8×8 images:
each image is cut into non-overlapping p×p patches, each patch is flattened and projected
to a d-dimensional token, a learned [CLS] token is put in front, learned position
embeddings are added, and a Transformer encoder mixes the tokens; the class is read off
the [CLS] token at the end::

    x (8, 8) → 16 patches of 2×2 → (16, 4) → Linear(4, d) → prepend [CLS] → + pos (17, d)
             → TransformerEncoder (pre-norm: x + MHA(LN(x)), x + FF(LN(x))) × L → LayerNorm
             → take row 0 ([CLS]) → Linear(d, 10) → logits z,   ŷ = softmax(z)

trained with the cross-entropy (F5) and AdamW, the learning rate warmed up linearly and
then decayed on a cosine (F12) (F-numbers: the formulas of docs/formulas.md). A
Transformer has no built-in notion of "nearby pixels": the position embeddings are all it
knows of the layout, and it learns them from 1,149 training images. Split as
mlp_digits.py: 64% training, 16% validation, 20% test, stratified by class.

    python examples/vit_digits.py [--epochs 60] [--patch 2] [--d-model 64] [--layers 3]
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


class ViT(nn.Module):
    """Patch embedding, [CLS] token, position embeddings, pre-norm encoder, linear head."""

    def __init__(self, image_size: int = 8, patch: int = 2, d_model: int = 64,
                 nhead: int = 4, num_layers: int = 3, dim_feedforward: int = 128,
                 dropout: float = 0.1, num_classes: int = 10) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"ViT: patch size {patch} does not divide image size {image_size}")
        self.patch = patch
        self.num_patches = (image_size // patch) ** 2
        self.patch_embed = nn.Linear(patch * patch, d_model)
        self.cls_token = nn.Parameter(np.zeros((1, 1, d_model), dtype=np.float32))
        self.pos_embed = nn.Parameter(np.zeros((1, 1 + self.num_patches, d_model),
                                               dtype=np.float32))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                                           activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model))
        self.head = nn.Linear(d_model, num_classes)

    def patchify(self, images):
        """(N, H, W) -> (N, H/p · W/p, p·p): patches in row-major order, each flattened."""
        n, h, w = images.shape
        p = self.patch
        x = images.reshape(n, h // p, p, w // p, p)          # (N, rows, p, cols, p)
        x = x.permute(0, 1, 3, 2, 4)                         # (N, rows, cols, p, p)
        return x.reshape(n, (h // p) * (w // p), p * p)

    def forward(self, images):
        tokens = self.patch_embed(self.patchify(images))      # (N, P, d)
        n, _, d = tokens.shape
        cls = self.cls_token.broadcast_to((n, 1, d))         # one [CLS] per image
        x = engine.cat([cls, tokens], dim=1) + self.pos_embed   # (N, 1 + P, d)
        x = self.encoder(x)
        return self.head(x[:, 0])                            # (N, d) -> (N, classes)


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
    parser = make_parser("vit_digits", __doc__, epochs=60, lr=1e-3, batch_size=32)
    parser.add_argument("--patch", type=int, default=2, choices=(1, 2, 4, 8),
                        help="patch side in pixels (default 2: 16 patches of 2×2)")
    parser.add_argument("--d-model", type=int, default=64, help="token width (default 64)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--layers", type=int, default=3, help="encoder layers (default 3)")
    parser.add_argument("--ff", type=int, default=128,
                        help="feed-forward hidden width (default 128)")
    parser.add_argument("--dropout", type=float, default=0.1, help="dropout (default 0.1)")
    parser.add_argument("--weight-decay", type=float, default=0.05,
                        help="AdamW weight decay (default 0.05)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="epochs of linear learning-rate warm-up (default 2)")
    args = setup(parser.parse_args(argv))

    # ---- data: (1797, 8, 8) images in [0, 1], standardized with the training set's stats
    images, labels = load_digits()
    if args.smoke:
        images, labels = images[:200], labels[:200]
        args.d_model, args.heads, args.layers, args.ff = 16, 2, 1, 32
    x_rest, x_test, y_rest, y_test = train_test_split(images, labels, test_size=0.2,
                                                      stratify=labels, seed=args.seed)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.2,
                                                      stratify=y_rest, seed=args.seed)
    mean, std = x_train.mean(), x_train.std()
    x_train, x_val, x_test = ((a - mean) / std for a in (x_train, x_val, x_test))
    print(f"digits: {len(x_train)} training, {len(x_val)} validation, {len(x_test)} test "
          f"images of {images.shape[1]}×{images.shape[2]} pixels, 10 classes")
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size,
                              shuffle=True, device=args.device)
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=256, device=args.device)
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=256,
                             device=args.device)

    # ---- model, optimizer, schedule (per optimizer step)
    model = ViT(images.shape[1], args.patch, args.d_model, args.heads, args.layers,
                args.ff, args.dropout).to(args.device)
    optimizer = optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    warmup = min(args.warmup, args.epochs - 1) * steps_per_epoch
    total_steps = args.epochs * steps_per_epoch
    scheduler = optim.lr_scheduler.SequentialLR(optimizer, [
        optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=max(warmup, 1)),
        optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup, 1)),
    ], milestones=[warmup])
    print(model)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters; "
          f"{model.num_patches} patches of {args.patch}×{args.patch} + [CLS]")

    # ---- training
    history = History(args.out, args.epochs)
    run = Run(args, model=model, optimizer=optimizer, scheduler=scheduler, loader=train_loader,
              history=history)
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
            scheduler.step()
            sums.total += loss.item() * len(yb)
            sums.correct += int((logits.argmax(dim=1).numpy() == yb.numpy()).sum())
            sums.seen += len(yb)
            bar.set_postfix(loss=f"{sums.total / sums.seen:.4f}")
            run.batch_done()
        val_loss, val_pred, val_true = evaluate(model, val_loader)
        history.log(epoch, train_loss=sums.total / sums.seen, val_loss=val_loss,
                    train_acc=sums.correct / sums.seen,
                    val_acc=metrics.accuracy(val_true, val_pred))
        run.epoch_done()
    history.plot(title="Vision Transformer on digits")

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
