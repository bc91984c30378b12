"""A decoder-only Transformer language model over characters (a tiny GPT).

The model reads a window of characters c₁ … c_T and, at every position t, predicts the
next character c_{t+1} from c₁ … c_t only: the causal mask hides the future from the
self-attention (position t attends to positions ≤ t), so all T predictions train at once::

    ids (N, T) → Embedding + sinusoidal PE → TransformerEncoder with a causal mask
               (pre-norm: x + MHA(LN(x)), x + FF(LN(x))) × L → LayerNorm → Linear
               → logits (N, T, vocab),   loss = mean_t -log p(c_{t+1} | c_{≤t})  (F5)

(F5: the cross-entropy of docs/formulas.md.)

("Encoder" layers with a causal mask are exactly a GPT's decoder blocks: there is no
second input to attend to.) The loss in nats per character is also reported as bits per
character, bpc = loss / ln 2: the average number of bits an ideal coder driven by the
model would spend per character (8 for raw bytes, log₂(vocab) for a uniform guess).

After training, text is sampled one character at a time: the logits of the last
position are divided by the temperature τ and a character is drawn from softmax(z/τ)
(τ → 0: always the most likely character; τ = 1: the model's distribution; τ > 1:
flatter, more surprising).

The text is any UTF-8 file (``--text PATH``); by default the Python Language Reference
topics that ship with CPython (``data.load_text_corpus()``, ~465,000 characters, no
download). The first 90% train, the next 5% validate, the last 5% test.

    python examples/char_transformer_lm.py [--text FILE] [--epochs 3] [--temperature 0.8]
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

import engine
import losses
import nn
import optim
from common import History, Run, make_parser, print_report, progress, save_graph, setup
from data import CharTokenizer, DataLoader, TensorDataset, load_text_corpus


class CharTransformerLM(nn.Module):
    """Embedding and positions, a causal pre-norm Transformer stack, a linear read-out."""

    def __init__(self, vocab_size: int, block_size: int, d_model: int = 128, nhead: int = 4,
                 num_layers: int = 3, dim_feedforward: int = 512,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.block_size = block_size
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.PositionalEncoding(d_model, block_size, dropout, batch_first=True)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                                           activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model))
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids):
        """Next-character logits (N, T, vocab) for ids (N, T), T ≤ block_size."""
        T = ids.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=ids.device)
        x = self.pos(self.embed(ids))
        x = self.blocks(x, mask=causal, is_causal=True)
        return self.head(x)


def windows(ids: np.ndarray, length: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows of ``ids[offset:]``: inputs (M, length) and, shifted by one
    character, their targets (M, length)."""
    m = (len(ids) - offset - 1) // length
    x = ids[offset:offset + m * length].reshape(m, length)
    y = ids[offset + 1:offset + 1 + m * length].reshape(m, length)
    return x, y


def lm_loss(logits, targets, reduction: str = "mean"):
    """Cross-entropy of (N, T, vocab) logits against (N, T) next characters."""
    return losses.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                reduction=reduction)


def evaluate(model, loader) -> float:
    """Mean cross-entropy per character (nats) over ``loader``."""
    model.eval()
    total, count = 0.0, 0
    with engine.no_grad():
        for xb, yb in loader:
            total += lm_loss(model(xb), yb, reduction="sum").item()
            count += yb.shape[0] * yb.shape[1]
    model.train()
    return total / count


def sample(model: CharTransformerLM, tok: CharTokenizer, prompt: str, n_chars: int,
           temperature: float, device: str) -> str:
    """``n_chars`` characters drawn one at a time from softmax(logits / temperature)."""
    rng = engine.default_generator()
    ids = list(tok.encode(prompt))
    model.eval()
    with engine.no_grad():
        for _ in range(n_chars):
            context = engine.tensor(np.asarray([ids[-model.block_size:]], dtype=np.int64),
                                    device=device)
            logits = model(context)[0, -1].numpy().astype(np.float64)    # (vocab,)
            if temperature <= 0:
                ids.append(int(logits.argmax()))
                continue
            z = logits / temperature
            p = np.exp(z - z.max())
            ids.append(int(rng.choice(len(p), p=p / p.sum())))
    model.train()
    return tok.decode(ids)


def main(argv=None) -> dict:
    parser = make_parser("char_transformer_lm", __doc__, epochs=3, lr=3e-3, batch_size=16)
    parser.add_argument("--text", type=Path, default=None,
                        help="a UTF-8 text file to model (default: the built-in corpus)")
    parser.add_argument("--max-chars", type=int, default=None,
                        help="use only the first characters of the text (default: all)")
    parser.add_argument("--block-size", type=int, default=64,
                        help="characters of context (default 64)")
    parser.add_argument("--d-model", type=int, default=128, help="model width (default 128)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--layers", type=int, default=3, help="Transformer blocks (default 3)")
    parser.add_argument("--ff", type=int, default=512,
                        help="feed-forward hidden width (default 512)")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="dropout (default 0: three passes over the text do not overfit)")
    parser.add_argument("--temperature", type=float, default=0.8,
                        help="sampling temperature τ (default 0.8; 0: greedy)")
    parser.add_argument("--sample-chars", type=int, default=400,
                        help="characters to sample at the end (default 400)")
    parser.add_argument("--prompt", default=None,
                        help="text the sample starts from (default: the text's first word)")
    args = setup(parser.parse_args(argv))
    if args.smoke:
        args.max_chars = args.max_chars or 20_000
        args.block_size, args.d_model, args.heads, args.layers, args.ff = 32, 32, 2, 1, 64
        args.sample_chars = min(args.sample_chars, 50)

    # ---- data: characters -> ids; 90% / 5% / 5% contiguous split
    if args.text is not None:
        text = args.text.read_text(encoding="utf-8")
        source = str(args.text)
    else:
        text, source = load_text_corpus(), "the Python Language Reference (pydoc_data)"
    if args.max_chars is not None:
        text = text[:args.max_chars]
    tok = CharTokenizer().fit(text)
    prompt = args.prompt if args.prompt is not None else text.split(maxsplit=1)[0] + " "
    unknown = sorted(set(prompt) - set(tok.itos))
    if unknown:
        parser.error(f"--prompt: characters {unknown} do not occur in the text")
    ids = tok.encode(text)
    n_train, n_val = int(0.9 * len(ids)), int(0.05 * len(ids))
    train_ids, val_ids = ids[:n_train], ids[n_train:n_train + n_val]
    test_ids = ids[n_train + n_val:]
    if min(len(val_ids), len(test_ids)) <= args.block_size:
        parser.error(f"the text has {len(ids):,} characters: too few for a validation and a "
                     f"test window of --block-size {args.block_size} each")
    print(f"{source}: {len(ids):,} characters, vocabulary of {len(tok)}; "
          f"{len(train_ids):,} training, {len(val_ids):,} validation, {len(test_ids):,} test "
          f"(uniform guess: {math.log2(len(tok)):.2f} bits per character)")
    val_loader = DataLoader(TensorDataset(*windows(val_ids, args.block_size)),
                            batch_size=128, device=args.device)
    test_loader = DataLoader(TensorDataset(*windows(test_ids, args.block_size)),
                             batch_size=128, device=args.device)

    # ---- model and optimizer
    model = CharTransformerLM(len(tok), args.block_size, args.d_model, args.heads,
                              args.layers, args.ff, args.dropout).to(args.device)
    optimizer = optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * (len(train_ids) // args.block_size // args.batch_size + 1)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps,
                                                     eta_min=args.lr / 10)
    print(model)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters")

    # ---- training: each epoch cuts the text into windows at a new random offset
    history = History(args.out, args.epochs)
    run = Run(args, model=model, optimizer=optimizer, scheduler=scheduler, history=history,
              extra={"vocabulary": tok.itos, "block_size": args.block_size})
    ln2 = math.log(2)
    for epoch in run.epochs():
        sums = run.running(offset=None, total=0.0, seen=0)
        if sums.offset is None:                       # a new epoch (a resumed one has its own)
            sums.offset = int(engine.default_generator().integers(args.block_size))
        windowed = TensorDataset(*windows(train_ids, args.block_size, sums.offset))
        train_loader = run.use_loader(DataLoader(windowed, batch_size=args.batch_size,
                                                 shuffle=True, device=args.device))
        bar = progress(train_loader, f"epoch {epoch}/{args.epochs}", initial=run.batch)
        for step, (xb, yb) in enumerate(bar, start=run.batch):
            loss = lm_loss(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            if epoch == 1 and step == 0:
                save_graph(loss, model, args.out)
            optim.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            sums.total += loss.item() * len(xb)
            sums.seen += len(xb)
            bar.set_postfix(bpc=f"{sums.total / sums.seen / ln2:.3f}")
            run.batch_done()
        val_loss = evaluate(model, val_loader)
        history.log(epoch, train_loss=sums.total / sums.seen, val_loss=val_loss,
                    train_bpc=sums.total / sums.seen / ln2, val_bpc=val_loss / ln2)
        run.epoch_done()
    history.plot(title="character Transformer language model")

    # ---- test, then a sample
    test_loss = evaluate(model, test_loader)
    results = {"test_loss": test_loss, "test_bpc": test_loss / ln2,
               "test_perplexity": math.exp(test_loss),
               "seconds_per_epoch": history.seconds_per_epoch}
    history.save_json(test=results)
    print_report("test", results)
    text_out = sample(model, tok, prompt, args.sample_chars, args.temperature,
                      args.device)
    print(f"\n== sample (temperature {args.temperature}) ==\n{text_out}")
    print(f"\nwrote {args.out / 'curves.png'}, {args.out / 'checkpoint.safetensors'}")
    results["sample"] = text_out
    return results


if __name__ == "__main__":
    main()
