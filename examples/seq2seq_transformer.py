"""The full encoder-decoder Transformer ("Attention Is All You Need") on a generated task.

The tasks turn one string of digits into another, character by character:

    reverse   "4071"   -> "1704"
    sort      "4071"   -> "0147"
    addition  "57+384" -> "441"

The encoder reads the source; the decoder writes the target one character at a time, each
step attending to the characters it has written so far (causal self-attention) and to
the whole source (cross-attention)::

    src ids → Embedding·√d + PE → encoder ─────────────── memory
    tgt ids → Embedding·√d + PE → decoder (masked self-attn, attn over memory, FF) → Linear
          → logits over the 14 symbols  (<pad> <bos> <eos> + 0..9)

Training uses teacher forcing: the decoder is fed the true target shifted right, ``<bos> 1
7 0 4``, and must predict ``1 7 0 4 <eos>`` at every position at once; the cross-entropy
(docs/formulas.md, F5) ignores padding. At test time there is no true target to feed:
greedy decoding starts from ``<bos>`` and appends the most probable character until
``<eos>``. A test string counts only if every character is right (exact match). The test
strings are generated apart from the training ones and any that also occur in training are
removed, so the score is on strings the model has never seen.

    python examples/seq2seq_transformer.py [--task sort|reverse|addition] [--epochs 20]
"""

from __future__ import annotations

import math

import numpy as np

import engine
import losses
import nn
import optim
from common import History, Run, make_parser, print_report, progress, save_graph, setup
from data import (
    BOS, EOS, PAD, DataLoader, TensorDataset, make_addition_task, make_reverse_task,
    make_sort_task,
)

TASKS = {"reverse": make_reverse_task, "sort": make_sort_task, "addition": make_addition_task}


class Seq2SeqTransformer(nn.Module):
    """Token embeddings and sinusoidal positions around ``nn.Transformer``, and a linear
    layer from the decoder's output to the vocabulary."""

    def __init__(self, vocab_size: int, d_model: int = 64, nhead: int = 4,
                 num_layers: int = 2, dim_feedforward: int = 256, dropout: float = 0.0,
                 max_len: int = 64, pad_id: int = 0) -> None:
        super().__init__()
        self.d_model = d_model
        self.pad_id = pad_id
        self.src_embed = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.pos = nn.PositionalEncoding(d_model, max_len, dropout, batch_first=True)
        self.transformer = nn.Transformer(d_model, nhead, num_layers, num_layers,
                                          dim_feedforward, dropout, batch_first=True)
        self.generator = nn.Linear(d_model, vocab_size)

    def embed(self, embedding: nn.Embedding, ids):
        """(N, T) ids -> (N, T, d): scaled by √d so the embeddings outweigh the PE."""
        return self.pos(embedding(ids) * math.sqrt(self.d_model))

    def encode(self, src):
        """The memory (N, S, d) of the sources (N, S); padding is masked out of attention."""
        return self.transformer.encoder(self.embed(self.src_embed, src),
                                        src_key_padding_mask=src == self.pad_id)

    def decode(self, tgt_in, memory, src):
        """Logits (N, T, vocab) for every prefix of ``tgt_in`` (N, T)."""
        T = tgt_in.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=tgt_in.device)
        out = self.transformer.decoder(self.embed(self.tgt_embed, tgt_in), memory,
                                       tgt_mask=causal,
                                       tgt_key_padding_mask=tgt_in == self.pad_id,
                                       memory_key_padding_mask=src == self.pad_id)
        return self.generator(out)

    def forward(self, src, tgt_in):
        return self.decode(tgt_in, self.encode(src), src)


def greedy_decode(model: Seq2SeqTransformer, src, bos: int, eos: int, max_len: int):
    """Append the most probable next token, from ``<bos>``, until every row has ``<eos>``
    (or ``max_len`` tokens). Returns int64 ids (N, ≤ max_len), without ``<bos>``."""
    model.eval()
    with engine.no_grad():
        memory = model.encode(src)                 # the source is encoded once
        n = src.shape[0]
        ys = np.full((n, 1), bos, dtype=np.int64)
        done = np.zeros(n, dtype=bool)
        for _ in range(max_len):
            tgt = engine.tensor(ys, device=src.device)
            logits = model.decode(tgt, memory, src)[:, -1]          # (N, vocab)
            nxt = logits.argmax(dim=-1).numpy().astype(np.int64)
            nxt[done] = model.pad_id               # finished rows only get padding
            ys = np.concatenate([ys, nxt[:, None]], axis=1)
            done |= nxt == eos
            if done.all():
                break
    model.train()
    return ys[:, 1:]


def evaluate(model, loader, decode_fn, tgt_len: int) -> tuple[float, float, float]:
    """Teacher-forced loss and token accuracy, and the greedy exact-match accuracy."""
    model.eval()
    total, tokens, correct_tokens, exact, seen = 0.0, 0, 0, 0, 0
    with engine.no_grad():
        for src, tgt in loader:
            tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]
            logits = model(src, tgt_in)
            total += losses.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                          tgt_out.reshape(-1), ignore_index=model.pad_id,
                                          reduction="sum").item()
            mask = tgt_out.numpy() != model.pad_id
            pred = logits.argmax(dim=-1).numpy()
            tokens += int(mask.sum())
            correct_tokens += int(((pred == tgt_out.numpy()) & mask).sum())
            decoded = decode_fn(model, src)
            truth = tgt.numpy().tolist()
            exact += sum(d == t for d, t in zip(decoded, truth))
            seen += len(truth)
    model.train()
    return total / tokens, correct_tokens / tokens, exact / seen


def main(argv=None) -> dict:
    parser = make_parser("seq2seq_transformer", __doc__, epochs=20, lr=1e-3, batch_size=64)
    parser.add_argument("--task", choices=sorted(TASKS), default="sort",
                        help="the generated task (default sort)")
    parser.add_argument("--train-size", type=int, default=6000,
                        help="training examples (default 6000)")
    parser.add_argument("--test-size", type=int, default=1000,
                        help="validation and test examples, each (default 1000)")
    parser.add_argument("--max-len", type=int, default=8,
                        help="longest source string (digits) for reverse and sort, or "
                             "digits per operand for addition (default 8)")
    parser.add_argument("--d-model", type=int, default=64, help="model width (default 64)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--layers", type=int, default=2,
                        help="encoder layers and decoder layers, each (default 2)")
    parser.add_argument("--ff", type=int, default=256,
                        help="feed-forward hidden width (default 256)")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="dropout (default 0: the generated data has no noise to resist)")
    args = setup(parser.parse_args(argv))
    if args.smoke:
        args.train_size, args.test_size = 256, 64
        args.d_model, args.heads, args.layers, args.ff = 16, 2, 1, 32

    # ---- data: three disjoint sets of generated strings
    make = TASKS[args.task]
    size = dict(max_digits=args.max_len) if args.task == "addition" else dict(
        max_len=args.max_len)
    train = make(args.train_size, seed=args.seed, **size)
    seen_sources = set(train.sources)
    held_out = make(4 * args.test_size, seed=args.seed + 1, **size)
    first = {}                                        # unseen source -> its first index
    for i, s in enumerate(held_out.sources):
        if s not in seen_sources:
            first.setdefault(s, i)
    fresh = list(first.values())[:2 * args.test_size]
    tok = train.tokenizer
    pad, bos, eos = tok.index(PAD), tok.index(BOS), tok.index(EOS)
    src_len = max(len(s) for s in train.sources + held_out.sources)
    tgt_len = max(len(t) for t in train.targets + held_out.targets) + 2   # <bos> .. <eos>
    src_train, tgt_train = train.encode(src_len, tgt_len)
    src_held, tgt_held = held_out.encode(src_len, tgt_len)
    src_held, tgt_held = src_held[fresh], tgt_held[fresh]
    half = len(fresh) // 2
    src_val, tgt_val, src_test, tgt_test = (src_held[:half], tgt_held[:half],
                                            src_held[half:], tgt_held[half:])
    print(f"task {args.task!r}: {train.sources[0]!r} -> {train.targets[0]!r}; "
          f"{len(src_train)} training, {len(src_val)} validation, {len(src_test)} test "
          f"pairs (none of the latter two in training); vocabulary {tok.itos}")
    train_loader = DataLoader(TensorDataset(src_train, tgt_train), batch_size=args.batch_size,
                              shuffle=True, device=args.device)
    val_loader = DataLoader(TensorDataset(src_val, tgt_val), batch_size=500,
                            device=args.device)
    test_loader = DataLoader(TensorDataset(src_test, tgt_test), batch_size=500,
                             device=args.device)

    # ---- model and optimizer
    model = Seq2SeqTransformer(len(tok), args.d_model, args.heads, args.layers, args.ff,
                               args.dropout, max_len=max(src_len, tgt_len),
                               pad_id=pad).to(args.device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98))
    steps = args.epochs * len(train_loader)
    warmup = max(1, steps // 20)

    def lr_factor(t: int) -> float:                   # linear warm-up, then a cosine decay
        return min(1.0, (t + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps))

    scheduler = optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    print(model)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters")

    def decode_fn(m, src):                             # padded to tgt_len, as the targets
        ids = greedy_decode(m, src, bos, eos, tgt_len - 1)
        out = np.full((len(ids), tgt_len), pad, dtype=np.int64)
        out[:, 0] = bos
        out[:, 1:1 + ids.shape[1]] = ids
        return out.tolist()

    # ---- training (teacher forcing)
    history = History(args.out, args.epochs)
    run = Run(args, model=model, optimizer=optimizer, scheduler=scheduler, loader=train_loader,
              history=history, extra={"task": args.task, "vocabulary": tok.itos})
    for epoch in run.epochs():
        sums = run.running(total=0.0, seen=0)
        bar = progress(train_loader, f"epoch {epoch}/{args.epochs}", initial=run.batch)
        for step, (src, tgt) in enumerate(bar, start=run.batch):
            tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]     # <bos> y1 .. yn -> y1 .. yn <eos>
            logits = model(src, tgt_in)                     # (N, T, vocab)
            loss = losses.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                        tgt_out.reshape(-1), ignore_index=pad)
            optimizer.zero_grad()
            loss.backward()
            if epoch == 1 and step == 0:
                save_graph(loss, model, args.out)
            optim.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            sums.total += loss.item() * len(src)
            sums.seen += len(src)
            bar.set_postfix(loss=f"{sums.total / sums.seen:.4f}")
            run.batch_done()
        val_loss, val_token_acc, val_exact = evaluate(model, val_loader, decode_fn, tgt_len)
        history.log(epoch, train_loss=sums.total / sums.seen, val_loss=val_loss,
                    val_token_acc=val_token_acc, val_exact_match=val_exact)
        run.epoch_done()
    history.plot(title=f"Transformer seq2seq: {args.task}")

    # ---- test, and a few decoded examples
    test_loss, test_token_acc, test_exact = evaluate(model, test_loader, decode_fn, tgt_len)
    results = {"test_loss": test_loss, "test_token_accuracy": test_token_acc,
               "test_exact_match": test_exact,
               "seconds_per_epoch": history.seconds_per_epoch}
    history.save_json(test=results)
    print_report("test", results)
    src_show = engine.tensor(src_test[:5], device=args.device)
    for s, t, p in zip(src_test[:5], tgt_test[:5], decode_fn(model, src_show)):
        mark = "ok" if list(t) == p else "WRONG"
        print(f"  {held_out.decode(s):>10} -> {held_out.decode(p):<10} "
              f"(expected {held_out.decode(t)}) {mark}")
    print(f"\nwrote {args.out / 'curves.png'}, {args.out / 'checkpoint.safetensors'}")
    return results


if __name__ == "__main__":
    main()
