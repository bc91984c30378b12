"""Pre-train a Transformer language model on unlabelled text, then fine-tune it as a
classifier with few labels, against the same model trained from scratch
(docs/formulas.md, F15).

The data is the built-in negation sentiment task: restaurant-review sentences such as
"the food was not good but the service was great" (positive: the label is the sentiment
of the clause after "but", and "not"/"never" flip an adjective). No bag of words can
solve it (see ``data.make_negation_sentiment``); a model has to read word order.

1. **Pre-training** (no labels): a word-level Transformer with a causal mask learns to
   predict each next word from the words before it, on 20,000 sentences whose labels are
   thrown away. Predicting the last adjective well needs the task's logic: the two
   clauses always contrast, so after "the food was not good but the service was" a
   positive adjective is due, after "... but the service was never" a negative one. Yet
   nothing in the text says which adjectives are positive: the model must discover the
   two groups and the negation rule together, and for many epochs it predicts either
   group with equal probability (validation loss ≈ 1.66 nats per word). Then, within a
   couple of epochs (around epoch 13-17 here, depending on the seed), it finds them and
   the loss drops to ≈ 1.60: the sudden "grokking" jump in pretrain_curves.png. If
   your run shows no drop, pre-train longer.
2. **Fine-tuning** (few labels): the language model's output layer is dropped; a new
   linear layer reads the mean of the encoder's outputs over the sentence's words; the
   whole network is trained on 200 labelled sentences.
3. **From scratch**: the same classifier, randomly initialized, trained on the same 200
   sentences with the same settings.

    encoder(ids) = LayerNorm(TransformerEncoder_causal(Embedding(ids) + PE))   (N, T, d)
    language model:  logits = Linear(d, vocab)(encoder(ids))        next word at each t
    classifier:      logits = Linear(d, 2)(mean_{t: word} encoder(ids)_t)

Both classifiers are tested on the same 2,000 held-out sentences.

    python examples/pretrain_finetune.py [--pretrain-epochs 24] [--epochs 40] [--labels 200]
"""

from __future__ import annotations

import numpy as np

import engine
import losses
import nn
import optim
from common import History, Run, make_parser, print_report, progress, save_graph, setup
from data import DataLoader, TensorDataset, Tokenizer, make_negation_sentiment, pad_sequences
from losses import metrics


class Encoder(nn.Module):
    """Word embeddings + sinusoidal positions → causal pre-norm Transformer → LayerNorm."""

    def __init__(self, vocab_size: int, max_len: int, d_model: int = 64, nhead: int = 4,
                 num_layers: int = 1, dim_feedforward: int = 256,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.pos = nn.PositionalEncoding(d_model, max_len, dropout, batch_first=True)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                                           activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model))

    def forward(self, ids):
        """Hidden states (N, T, d) for word ids (N, T); position t sees words ≤ t only."""
        causal = nn.Transformer.generate_square_subsequent_mask(ids.shape[1],
                                                                 device=ids.device)
        return self.blocks(self.pos(self.embed(ids)), mask=causal, is_causal=True)


class LanguageModel(nn.Module):
    """The encoder and a linear layer to next-word logits (N, T, vocab)."""

    def __init__(self, encoder: Encoder, vocab_size: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.lm_head = nn.Linear(encoder.embed.embedding_dim, vocab_size)

    def forward(self, ids):
        return self.lm_head(self.encoder(ids))


class Classifier(nn.Module):
    """The encoder, mean-pooled over the words (padding left out), and a new linear head."""

    def __init__(self, encoder: Encoder, num_classes: int = 2) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.embed.embedding_dim, num_classes)

    def forward(self, ids):
        h = self.encoder(ids)                                   # (N, T, d)
        words = (ids != 0).to(h.dtype).unsqueeze(-1)            # (N, T, 1): 1 at words
        pooled = (h * words).sum(dim=1) / words.sum(dim=1)      # (N, d)
        return self.head(pooled)


def lm_loss(model, ids, reduction: str = "mean"):
    """Next-word cross-entropy: inputs ids[:, :-1], targets ids[:, 1:], padding ignored."""
    logits = model(ids[:, :-1])
    targets = ids[:, 1:]
    return losses.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                ignore_index=0, reduction=reduction), logits, targets


def evaluate_lm(model, loader) -> tuple[float, float]:
    """Mean next-word cross-entropy and accuracy over the words of ``loader``."""
    model.eval()
    total, correct, count = 0.0, 0, 0
    with engine.no_grad():
        for (ids,) in loader:
            loss, logits, targets = lm_loss(model, ids, reduction="sum")
            words = targets.numpy() != 0
            total += loss.item()
            correct += int(((logits.argmax(dim=-1).numpy() == targets.numpy())
                            & words).sum())
            count += int(words.sum())
    model.train()
    return total / count, correct / count


def evaluate_classifier(model, loader) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean cross-entropy, predicted and true labels over ``loader``."""
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


def pretrain(model, ids_train, ids_val, args) -> Run:
    """Next-word prediction on unlabelled sentences; returns the Run (its history holds the
    curves), checkpointed to pretrained_lm.safetensors."""
    loader = DataLoader(TensorDataset(ids_train), batch_size=args.pretrain_batch_size,
                        shuffle=True,
                        device=args.device)
    val_loader = DataLoader(TensorDataset(ids_val), batch_size=500, device=args.device)
    optimizer = optim.AdamW(model.parameters(), lr=args.pretrain_lr, weight_decay=0.01)
    history = History(args.out, args.pretrain_epochs)
    run = Run(args, model=model, optimizer=optimizer, loader=loader, history=history,
              epochs=args.pretrain_epochs, path=args.out / "pretrained_lm.safetensors")
    for epoch in run.epochs():
        sums = run.running(total=0.0, correct=0, count=0)
        bar = progress(loader, f"pre-train {epoch}/{args.pretrain_epochs}", initial=run.batch)
        for step, (ids,) in enumerate(bar, start=run.batch):
            loss, logits, targets = lm_loss(model, ids)
            optimizer.zero_grad()
            loss.backward()
            if epoch == 1 and step == 0:
                save_graph(loss, model, args.out)
            optimizer.step()
            words = targets.numpy() != 0
            n = int(words.sum())
            sums.total += loss.item() * n
            sums.correct += int(((logits.argmax(dim=-1).numpy() == targets.numpy())
                                 & words).sum())
            sums.count += n
            bar.set_postfix(loss=f"{sums.total / sums.count:.4f}")
            run.batch_done()
        val_loss, val_acc = evaluate_lm(model, val_loader)
        history.log(epoch, train_loss=sums.total / sums.count, val_loss=val_loss,
                    train_next_word_acc=sums.correct / sums.count, val_next_word_acc=val_acc)
        run.epoch_done()
    return run


def train_classifier(name: str, model, train_data, val_data, args, after: Run) -> Run:
    """Cross-entropy training on the few labels, checkpointed to <name>.safetensors;
    returns the Run (with the optimizer and the curves). ``after``: the previous phase."""
    loader = DataLoader(TensorDataset(*train_data), batch_size=args.batch_size, shuffle=True,
                        device=args.device)
    val_loader = DataLoader(TensorDataset(*val_data), batch_size=500, device=args.device)
    optimizer = optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    history = History(args.out, args.epochs)
    print(f"\n-- {name}: {sum(p.numel() for p in model.parameters()):,} parameters")
    run = Run(args, model=model, optimizer=optimizer, loader=loader, history=history,
              path=args.out / f"{name}.safetensors", after=after)
    for epoch in run.epochs():
        sums = run.running(total=0.0, correct=0, seen=0)
        for xb, yb in progress(loader, f"{name} {epoch}/{args.epochs}", initial=run.batch):
            logits = model(xb)
            loss = losses.cross_entropy(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            sums.total += loss.item() * len(yb)
            sums.correct += int((logits.argmax(dim=1).numpy() == yb.numpy()).sum())
            sums.seen += len(yb)
            run.batch_done()
        val_loss, val_pred, val_true = evaluate_classifier(model, val_loader)
        history.log(epoch, train_loss=sums.total / sums.seen, val_loss=val_loss,
                    train_acc=sums.correct / sums.seen,
                    val_acc=metrics.accuracy(val_true, val_pred))
        run.epoch_done()
    return run


def main(argv=None) -> dict:
    parser = make_parser("pretrain_finetune", __doc__, epochs=40, lr=5e-4, batch_size=16)
    parser.add_argument("--pretrain-epochs", type=int, default=24,
                        help="passes of language-model pre-training (default 24)")
    parser.add_argument("--pretrain-lr", type=float, default=3e-3,
                        help="pre-training learning rate (default 3e-3)")
    parser.add_argument("--pretrain-batch-size", type=int, default=128,
                        help="pre-training sentences per step (default 128)")
    parser.add_argument("--unlabelled", type=int, default=20_000,
                        help="unlabelled pre-training sentences (default 20000)")
    parser.add_argument("--labels", type=int, default=200,
                        help="labelled sentences for fine-tuning and from scratch "
                             "(default 200)")
    parser.add_argument("--test-size", type=int, default=2000,
                        help="labelled test sentences (default 2000)")
    parser.add_argument("--d-model", type=int, default=64, help="model width (default 64)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--layers", type=int, default=1, help="Transformer layers (default 1)")
    parser.add_argument("--ff", type=int, default=256,
                        help="feed-forward hidden width (default 256)")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout (default 0)")
    args = setup(parser.parse_args(argv))
    if args.smoke:
        args.pretrain_epochs = 1
        args.unlabelled, args.labels, args.test_size = 500, 32, 64
        args.d_model, args.heads, args.layers, args.ff = 16, 2, 1, 32

    # ---- data: unlabelled sentences, and a separate draw of labelled ones
    unlabelled, _ = make_negation_sentiment(args.unlabelled + 1000, seed=args.seed)
    n_val = max(args.labels, 500) if not args.smoke else 64
    texts, labels = make_negation_sentiment(args.labels + n_val + args.test_size,
                                            seed=args.seed + 1)
    tok = Tokenizer(oov_token="<OOV>").fit_on_texts(unlabelled)
    maxlen = max(len(s) for s in tok.texts_to_sequences(unlabelled + texts))

    def encode(sentences):                                # words -> (N, maxlen), 0-padded
        return pad_sequences(tok.texts_to_sequences(sentences), maxlen=maxlen,
                             dtype=np.int64, padding="post")

    lm_train, lm_val = encode(unlabelled[:-1000]), encode(unlabelled[-1000:])
    x = encode(texts)
    a, b = args.labels, args.labels + n_val
    train_data, val_data, test_data = ((x[:a], labels[:a]), (x[a:b], labels[a:b]),
                                       (x[b:], labels[b:]))
    print(f"negation sentiment, e.g. {texts[0]!r} -> {labels[0]}; vocabulary "
          f"{tok.vocab_size} words, up to {maxlen} per sentence\n"
          f"pre-training: {len(lm_train):,} unlabelled sentences ({len(lm_val):,} to "
          f"validate); classifiers: {a} labelled to train, {b - a} to validate, "
          f"{len(x) - b} to test")

    def new_encoder() -> Encoder:
        return Encoder(tok.vocab_size, maxlen, args.d_model, args.heads, args.layers,
                       args.ff, args.dropout)

    # ---- 1. pre-training on unlabelled text
    lm = LanguageModel(new_encoder(), tok.vocab_size).to(args.device)
    print(lm)
    phase = pretrain(lm, lm_train, lm_val, args)
    pre_history = phase.history
    pre_history.plot("pretrain_curves.png", title="pre-training: next-word prediction")

    # ---- 2. fine-tuning: the pre-trained encoder with a new head, and 3. from scratch
    results = {"pretrain_val_loss": pre_history.last("val_loss"),
               "pretrain_val_next_word_acc": pre_history.last("val_next_word_acc")}
    runs = {"finetuned": lm.encoder, "scratch": new_encoder()}
    for name, encoder in runs.items():
        model = Classifier(encoder).to(args.device)
        phase = train_classifier(name, model, train_data, val_data, args, after=phase)
        history = phase.history
        history.plot(f"{name}_curves.png",
                     title=f"{name} classifier on {args.labels} labelled sentences")
        test_loss, test_pred, test_true = evaluate_classifier(
            model, DataLoader(TensorDataset(*test_data), batch_size=500, device=args.device))
        results[f"{name}_test_loss"] = test_loss
        results[f"{name}_test_accuracy"] = metrics.accuracy(test_true, test_pred)
        results[f"{name}_test_f1"] = metrics.f1_score(test_true, test_pred)
        results[f"{name}_seconds_per_epoch"] = history.seconds_per_epoch
        history.save_json(f"{name}_history.json")
    results["pretrain_seconds_per_epoch"] = pre_history.seconds_per_epoch
    pre_history.save_json("pretrain_history.json", test=results)
    print_report(f"test ({len(test_data[1])} sentences; classifiers trained on "
                 f"{args.labels} labels)", results)
    print(f"\nwrote {args.out}/{{pretrain,finetuned,scratch}}_curves.png and "
          f"{{pretrained_lm,finetuned,scratch}}.safetensors")
    return results


if __name__ == "__main__":
    main()
