"""The articles' Keras text classifier, written with xpgrad: tokenizer → padding →
Embedding → LSTM → Linear → softmax.

    texts ─ Tokenizer(num_words ≤ 10,000) ─ texts_to_sequences ─ pad_sequences(maxlen=100)
          → Embedding(vocab, 128) → LSTM(64), last hidden state h_T → Linear(64, classes)
          → logits z,  ŷ = softmax(z)  (F7);  cross-entropy (F5);  Adam (F11);  batch 64

(F-numbers: the formulas of docs/formulas.md.)

Padding and truncation are Keras's defaults ('pre'): zeros go in front, so the LSTM reads
the real words last and h_T summarizes them. 80% of the texts train (a tenth of them
held out for validation after each epoch), 20% test, split with a fixed seed and
stratified by label.

Data: ``--csv PATH`` reads your own file (``--text-column`` / ``--label-column``, default
``text`` and ``label``; labels may be any strings). Without it, generated restaurant
reviews (data.make_negation_sentiment) whose label depends on word order and negation:

    "the food was not good but the service was great"        → positive
    "the service was great but the food was not good"        → negative

Both sentences have the same words, so a bag-of-words model cannot tell them apart: the
program trains one (logistic regression on word counts, scikit-learn) to show that it
stays near chance, while the LSTM, which reads the words in order, solves the task.
The test report gives accuracy, precision, recall, F1 and the confusion matrix (F14).

    python examples/lstm_text_classifier.py [--epochs 10] [--csv reviews.csv]
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


class LSTMClassifier(nn.Module):
    """Word indices (B, T) → Embedding → LSTM → the last hidden state → class logits."""

    def __init__(self, vocab_size: int, num_classes: int, embed_dim: int = 128,
                 hidden_size: int = 64):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, ids):
        x = self.embedding(ids)                # (B, T) -> (B, T, embed_dim)
        _, (h_n, _) = self.lstm(x)             # h_n (1, B, H): the state after the last word
        return self.fc(h_n[0])                 # (B, H) -> (B, classes); softmax is in the loss


def bag_of_words_baseline(tokenizer, train_texts, y_train, test_texts, y_test) -> float:
    """Test accuracy of logistic regression on word counts (word order thrown away)."""
    from sklearn.linear_model import LogisticRegression

    x_train = tokenizer.texts_to_matrix(train_texts, mode="count")
    x_test = tokenizer.texts_to_matrix(test_texts, mode="count")
    clf = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    return metrics.accuracy(y_test, clf.predict(x_test))


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
    parser = make_parser("lstm_text_classifier", __doc__, epochs=10, lr=1e-3, batch_size=64)
    parser.add_argument("--csv", help="a CSV file with a header row; default: generated data")
    parser.add_argument("--text-column", default="text", help="column of the texts")
    parser.add_argument("--label-column", default="label", help="column of the labels")
    parser.add_argument("--encoding", default="utf-8", help="encoding of the CSV file")
    parser.add_argument("--samples", type=int, default=4000,
                        help="generated sentences when there is no --csv (default 4000)")
    parser.add_argument("--num-words", type=int, default=10000,
                        help="vocabulary cap of the tokenizer (default 10000)")
    parser.add_argument("--maxlen", type=int, default=100, help="padded length (default 100)")
    parser.add_argument("--embed-dim", type=int, default=128, help="embedding size (128)")
    parser.add_argument("--hidden-size", type=int, default=64, help="LSTM state size (64)")
    args = setup(parser.parse_args(argv))
    if args.smoke:
        args.samples, args.maxlen, args.embed_dim, args.hidden_size = 200, 20, 8, 8

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
    print(f"e.g. {texts[0]!r} → {class_names[labels[0]]}")

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

    # ---- the bag-of-words baseline: same tokens, no order
    baseline_acc = bag_of_words_baseline(tokenizer, train_texts, y_train, test_texts, y_test)
    print(f"bag-of-words baseline (logistic regression on word counts): test accuracy "
          f"{baseline_acc:.4f}")

    # ---- model and optimizer
    model = LSTMClassifier(vocab_size, num_classes, args.embed_dim, args.hidden_size)
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
    history.plot(title="LSTM text classifier",
                 references={"acc": ("bag of words (test)", baseline_acc)})
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
        "bag_of_words_test_accuracy": baseline_acc,
        "seconds_per_epoch": history.seconds_per_epoch,
    }
    history.save_json(test=results)
    scope = (f"of class {class_names[1]!r}" if average == "binary"
             else "averaged over the classes (macro)")
    print_report(f"test (precision, recall and F1 {scope})", results,
                 metrics.confusion_matrix(test_true, test_pred, num_classes), class_names)
    for text, p, t in list(zip(test_texts, test_pred, test_true))[:4]:
        mark = "ok" if p == t else "WRONG"
        print(f"  [{mark:5}] {class_names[p]:>8}: {text}")
    print(f"\nwrote {args.out / 'curves.png'}, {args.out / 'checkpoint.safetensors'}, "
          f"{args.out / 'tokenizer.json'}")
    return results


if __name__ == "__main__":
    main()
