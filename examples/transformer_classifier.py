"""The text classifier of lstm_text_classifier.py with a Transformer encoder instead of
the LSTM ("Attention Is All You Need"; the articles' Keras Transformer block).

    texts ─ Tokenizer(num_words ≤ 10,000) ─ pad_sequences(maxlen=100)
          → Embedding(vocab, d) + PE (sinusoidal positional encoding)
          → TransformerEncoderLayer × layers, each (pre-norm, norm_first=True):
                x ← x + MultiheadAttention(LN(x))    softmax(QKᵀ/√d_k + mask) V per head
                x ← x + W₂ ReLU(W₁ LN(x) + b₁) + b₂  the feed-forward block
          → LayerNorm → mean over the real (non-padding) words → Linear(d, classes)
          → softmax (F7);  cross-entropy (F5), Adam (F11) with lr 3e-3, batch 64

(F-numbers: the formulas of docs/formulas.md.)

Attention sees all words at once and in no order; the positional encoding added to the
embeddings is what lets it tell "not good but great" from "great but not good". Padding
positions are masked out of the attention (``src_key_padding_mask``) and of the mean.

Unlike the LSTM, the encoder stays at chance for a few epochs before it finds the rule,
then learns it within two or three. The pre-norm layout (a layer norm before each block,
not after the residual sum as in the original paper) and a learning rate of 3e-3
shorten that plateau: with post-norm and 1e-3 it lasted about ten epochs.

The data and its split are those of lstm_text_classifier.py: ``--csv PATH`` (with
``--text-column`` / ``--label-column``) or, by default, the generated negation sentiment
task that a bag of words cannot solve. The test report gives accuracy, precision, recall,
F1 and the confusion matrix (F14).

    python examples/transformer_classifier.py [--epochs 12] [--csv reviews.csv]
"""

from __future__ import annotations

import numpy as np

import engine
import losses
import nn
import optim
from common import History, Run, make_parser, print_report, progress, save_graph, setup
from data import (
    DataLoader, LabelEncoder, TensorDataset, Tokenizer, make_negation_sentiment,
    pad_sequences, read_text_csv, train_test_split,
)
from losses import metrics


class TransformerClassifier(nn.Module):
    """Word indices (B, T), 0 = padding → embeddings + positions → encoder → mean → logits."""

    def __init__(self, vocab_size: int, num_classes: int, d_model: int = 64, nhead: int = 4,
                 num_layers: int = 2, dim_feedforward: int = 128, dropout: float = 0.0,
                 max_len: int = 100):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.position = nn.PositionalEncoding(d_model, max_len=max_len, dropout=dropout,
                                              batch_first=True)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model))
        self.fc = nn.Linear(d_model, num_classes)

    def forward(self, ids):
        padding = ids == 0                                  # (B, T) True at padding
        x = self.position(self.embedding(ids))              # (B, T, d): word + position
        x = self.encoder(x, src_key_padding_mask=padding)   # (B, T, d)
        keep = engine.logical_not(padding).to(x.dtype).unsqueeze(-1)   # (B, T, 1)
        count = engine.clamp(keep.sum(dim=1), min=1.0)       # (B, 1); 1 for an empty text
        pooled = (x * keep).sum(dim=1) / count              # mean over the real words
        return self.fc(pooled)                              # (B, classes)


def evaluate(model, loader) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean cross-entropy over ``loader``, the predicted classes and the true ones."""
    model.eval()                                            # dropout off
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
    parser = make_parser("transformer_classifier", __doc__, epochs=12, lr=3e-3,
                         batch_size=64)
    parser.add_argument("--csv", help="a CSV file with a header row; default: generated data")
    parser.add_argument("--text-column", default="text", help="column of the texts")
    parser.add_argument("--label-column", default="label", help="column of the labels")
    parser.add_argument("--encoding", default="utf-8", help="encoding of the CSV file")
    parser.add_argument("--samples", type=int, default=4000,
                        help="generated sentences when there is no --csv (default 4000)")
    parser.add_argument("--num-words", type=int, default=10000,
                        help="vocabulary cap of the tokenizer (default 10000)")
    parser.add_argument("--maxlen", type=int, default=100, help="padded length (default 100)")
    parser.add_argument("--d-model", type=int, default=64, help="model width (default 64)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--layers", type=int, default=2, help="encoder layers (default 2)")
    parser.add_argument("--ff", type=int, default=128, help="feed-forward width (default 128)")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="dropout (default 0; try 0.1 on a small data set that overfits)")
    args = setup(parser.parse_args(argv))
    if args.smoke:
        args.samples, args.maxlen = 200, 20
        args.d_model, args.heads, args.layers, args.ff = 8, 2, 1, 16

    # ---- texts and labels
    if args.csv:
        texts, raw_labels = read_text_csv(args.csv, args.text_column, args.label_column,
                                          encoding=args.encoding)
        if args.smoke:
            texts, raw_labels = texts[:args.samples], raw_labels[:args.samples]
        encoder = LabelEncoder().fit(raw_labels)
        labels = encoder.transform(raw_labels)
        class_names = [str(c) for c in encoder.classes_]
        source = args.csv
    else:
        texts, labels = make_negation_sentiment(args.samples, seed=args.seed, although=True)
        class_names = ["negative", "positive"]
        source = "generated negation sentiment (data.make_negation_sentiment)"
    num_classes = len(class_names)
    print(f"{len(texts)} texts from {source}, classes {class_names}")

    # ---- 80/20 split, then a tenth of the training texts for validation
    stratify = labels if min(np.bincount(labels)) >= 2 else None
    train_texts, test_texts, y_train, y_test = train_test_split(
        texts, labels, test_size=0.2, stratify=stratify, seed=args.seed)
    train_texts, val_texts, y_train, y_val = train_test_split(
        train_texts, y_train, test_size=0.1, seed=args.seed)

    # ---- words -> indices (fitted on the training texts only) -> padded (N, maxlen)
    tokenizer = Tokenizer(num_words=args.num_words).fit_on_texts(train_texts)
    vocab_size = tokenizer.vocab_size
    print(f"vocabulary: {len(tokenizer.word_index)} words, embedding table {vocab_size} rows "
          f"(index 0 is padding); sequences padded to {args.maxlen}")

    def encode(some_texts):
        return pad_sequences(tokenizer.texts_to_sequences(some_texts), maxlen=args.maxlen,
                             dtype="int64")

    x_train, x_val, x_test = encode(train_texts), encode(val_texts), encode(test_texts)
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size,
                              shuffle=True, device=args.device)
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=256, device=args.device)
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=256,
                             device=args.device)

    # ---- model and optimizer
    model = TransformerClassifier(vocab_size, num_classes, args.d_model, args.heads,
                                  args.layers, args.ff, args.dropout, args.maxlen)
    model.to(args.device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    print(model)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters")

    # ---- training
    history = History(args.out, args.epochs)
    run = Run(args, model=model, optimizer=optimizer, loader=train_loader,
              history=history, extra={"classes": class_names})
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
        val_loss, val_pred, val_true = evaluate(model, val_loader)
        history.log(epoch, train_loss=sums.total / sums.seen, val_loss=val_loss,
                    train_acc=sums.correct / sums.seen,
                    val_acc=metrics.accuracy(val_true, val_pred))
        run.epoch_done()
    history.plot(title="Transformer text classifier")
    tokenizer.save(args.out / "tokenizer.json")

    # ---- test
    test_loss, test_pred, test_true = evaluate(model, test_loader)
    average = "binary" if num_classes == 2 else "macro"
    results = {
        "test_loss": test_loss,
        "test_accuracy": metrics.accuracy(test_true, test_pred),
        "test_precision": metrics.precision(test_true, test_pred, average),
        "test_recall": metrics.recall(test_true, test_pred, average),
        "test_f1": metrics.f1_score(test_true, test_pred, average),
        "seconds_per_epoch": history.seconds_per_epoch,
    }
    history.save_json(test=results)
    scope = (f"of class {class_names[1]!r}" if average == "binary"
             else "averaged over the classes (macro)")
    print_report(f"test (precision, recall and F1 {scope})", results,
                 metrics.confusion_matrix(test_true, test_pred, num_classes), class_names)
    print(f"\nwrote {args.out / 'curves.png'}, {args.out / 'checkpoint.safetensors'}, "
          f"{args.out / 'tokenizer.json'}")
    return results


if __name__ == "__main__":
    main()
