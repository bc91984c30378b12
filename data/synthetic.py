"""Generated datasets: digit-string sequence tasks and a negation/contrast sentiment task.

Nothing here needs a file or a network; every generator takes ``seed`` (a private
``np.random.default_rng(seed)``) or, without it, draws from the engine generator, so
``engine.manual_seed(s)`` repeats the data.

Sequence-to-sequence tasks (for encoder-decoder Transformers) share one character
vocabulary: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, then ``+`` and the digits::

    task = make_reverse_task(5000, seed=0)       # "4071" -> "1704"
    src, tgt = task.encode()                     # int64 (N, S) and (N, T), 0-padded
    # teacher forcing: decoder input tgt[:, :-1], prediction target tgt[:, 1:]
    task.decode(tgt[0])                          # -> "1704"
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import engine
from data.chars import CharTokenizer
from data.text import pad_sequences

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


def _rng(seed: int | None) -> np.random.Generator:
    return engine.default_generator() if seed is None else np.random.default_rng(seed)


def sequence_task_tokenizer() -> CharTokenizer:
    """The vocabulary of the digit tasks: ``<pad> <bos> <eos> + 0 1 ... 9`` (size 14)."""
    return CharTokenizer(chars="0123456789+", specials=(PAD, BOS, EOS))


@dataclass
class SequenceTask:
    """Source and target strings of a generated task, with their shared tokenizer."""

    name: str
    sources: list[str]
    targets: list[str]
    tokenizer: CharTokenizer

    def __len__(self) -> int:
        return len(self.sources)

    def encode(self, src_len: int | None = None, tgt_len: int | None = None):
        """``(src, tgt)`` int64 arrays padded with ``<pad>`` = 0 at the end.

        ``src``: ``(N, src_len)`` source characters. ``tgt``: ``(N, tgt_len)``, each row
        ``<bos> target <eos>``. Lengths default to the longest row; longer rows are cut.
        """
        tok = self.tokenizer
        src = [tok.encode(s) for s in self.sources]
        tgt = [tok.encode(t, add_bos=True, add_eos=True) for t in self.targets]
        pad = tok.index(PAD)
        kw = dict(dtype=np.int64, padding="post", truncating="post", value=pad)
        return pad_sequences(src, maxlen=src_len, **kw), pad_sequences(tgt, maxlen=tgt_len, **kw)

    def decode(self, ids) -> str:
        """Token ids (a row of a target or a model's output) to text, up to ``<eos>``."""
        return self.tokenizer.decode(ids, skip_specials=True, stop_at_eos=True)


def _digit_strings(n: int, min_len: int, max_len: int, rng) -> list[str]:
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, "
                         f"max_len={max_len}")
    lengths = rng.integers(min_len, max_len + 1, size=n)
    digits = rng.integers(0, 10, size=(n, max_len))
    return ["".join(map(str, digits[i, :lengths[i]])) for i in range(n)]


def make_reverse_task(n: int, min_len: int = 1, max_len: int = 8,
                      seed: int | None = None) -> SequenceTask:
    """Digit strings of ``min_len..max_len`` characters and their reversal ("4071" -> "1704")."""
    sources = _digit_strings(n, min_len, max_len, _rng(seed))
    return SequenceTask("reverse", sources, [s[::-1] for s in sources],
                        sequence_task_tokenizer())


def make_sort_task(n: int, min_len: int = 1, max_len: int = 8,
                   seed: int | None = None) -> SequenceTask:
    """Digit strings and their digits in ascending order ("4071" -> "0147")."""
    sources = _digit_strings(n, min_len, max_len, _rng(seed))
    return SequenceTask("sort", sources, ["".join(sorted(s)) for s in sources],
                        sequence_task_tokenizer())


def make_addition_task(n: int, max_digits: int = 3, seed: int | None = None) -> SequenceTask:
    """Sums of two numbers of 1..``max_digits`` digits each ("57+384" -> "441").

    Each operand first draws its number of digits uniformly, then its value uniformly among
    numbers of that many digits, so short operands are as common as long ones.
    """
    if max_digits < 1:
        raise ValueError(f"make_addition_task: max_digits must be >= 1, got {max_digits}")
    rng = _rng(seed)
    width = rng.integers(1, max_digits + 1, size=(n, 2))
    low = np.where(width == 1, 0, 10 ** (width - 1))
    values = rng.integers(low, 10 ** width)            # [low, 10**width) per operand
    sources = [f"{a}+{b}" for a, b in values.tolist()]
    targets = [str(a + b) for a, b in values.tolist()]
    return SequenceTask("addition", sources, targets, sequence_task_tokenizer())


# ---------------------------------------------------------------- negation sentiment

ASPECTS = ("food", "service", "staff", "music", "wine", "dessert", "coffee", "view", "menu",
           "price", "room", "waiter", "pizza", "soup", "location")
POSITIVE = ("good", "great", "excellent", "delicious", "friendly", "lovely", "wonderful",
            "fantastic", "pleasant", "superb")
NEGATIVE = ("bad", "awful", "terrible", "bland", "rude", "poor", "horrible", "disappointing",
            "mediocre", "dreadful")
VERBS = ("was", "is")
NEGATIONS = ("not", "never")
INTENSIFIERS = ("very", "really", "quite")
OPENERS = ("honestly", "overall", "i think", "to be fair")


def _clause(sentiment: int, aspect: str, rng) -> str:
    """ "the ASPECT VERB [NEG] [INTENSIFIER] ADJ" whose meaning has the given sentiment."""
    negated = rng.random() < 0.5
    polarity = sentiment if not negated else 1 - sentiment   # NEG flips the adjective
    adjectives = POSITIVE if polarity == 1 else NEGATIVE
    words = ["the", aspect, VERBS[rng.integers(len(VERBS))]]
    if negated:
        words.append(NEGATIONS[rng.integers(len(NEGATIONS))])
    if rng.random() < 0.3:
        words.append(INTENSIFIERS[rng.integers(len(INTENSIFIERS))])
    words.append(adjectives[rng.integers(len(adjectives))])
    return " ".join(words)


def make_negation_sentiment(n: int, seed: int | None = None, although: bool = False):
    """Restaurant-review sentences whose label needs word order and negation.

    Returns ``(texts, labels)``: a list of ``n`` strings and int64 labels (1 positive,
    0 negative). The grammar::

        sentence := [OPENER] A "but" B                    label = sentiment(B)
                  | [OPENER] "although" A "," B           label = sentiment(B)  (although=True)
                  | [OPENER] B "although" A               label = sentiment(B)  (although=True)
        A, B     := "the" ASPECT VERB [NEG] [INTENSIFIER] ADJ    (two different aspects)
        sentiment(clause) = polarity(ADJ), flipped by NEG ("not" / "never")
        sentiment(A) = 1 - sentiment(B)                  (the clauses always contrast)

    e.g. "the food was not good but the service was great" is positive, "the wine is
    superb but the staff was never friendly" negative. The label is the sentiment of the
    clause after "but" (the main clause, not the one introduced by "although").

    Why a bag of words cannot beat chance: both clauses are drawn the same way given their
    sentiment, and their sentiments are opposite, so swapping A and B gives a sentence with
    the same words, the same probability and the opposite label. Every multiset of words
    is therefore exactly as likely positive as negative: any classifier of unordered words
    (unigram counts, tf-idf, ...) scores 50% in expectation. A sequence model must tell
    which clause comes after "but" and whether "not" precedes its adjective.
    Labels are balanced. Use :func:`negation_sentiment_label` for the rule itself.
    """
    rng = _rng(seed)
    texts, labels = [], np.empty(n, dtype=np.int64)
    for k in range(n):
        label = int(rng.integers(2))
        i, j = rng.choice(len(ASPECTS), size=2, replace=False)
        a = _clause(1 - label, ASPECTS[i], rng)
        b = _clause(label, ASPECTS[j], rng)
        form = int(rng.integers(3)) if although else 0
        sentence = (f"{a} but {b}", f"although {a} , {b}", f"{b} although {a}")[form]
        if rng.random() < 0.3:
            sentence = f"{OPENERS[rng.integers(len(OPENERS))]} {sentence}"
        texts.append(sentence)
        labels[k] = label
    return texts, labels


def _clause_sentiment(words: list[str]) -> int:
    adjective = next(w for w in reversed(words) if w in POSITIVE or w in NEGATIVE)
    polarity = 1 if adjective in POSITIVE else 0
    return 1 - polarity if any(w in NEGATIONS for w in words) else polarity


def negation_sentiment_label(text: str) -> int:
    """The label :func:`make_negation_sentiment` gives ``text``, computed by its grammar."""
    words = text.replace(",", " ").split()
    if "but" in words:
        main = words[words.index("but") + 1:]
    elif "although" in words:
        k = words.index("although")
        if k + 1 < len(words) and any(w == "the" for w in words[:k]):
            main = words[:k]                         # "B although A"
        else:
            rest = words[k + 1:]                     # "although A , B": B is the 2nd clause
            starts = [m for m, w in enumerate(rest) if w == "the"]
            main = rest[starts[1]:]
    else:
        raise ValueError(f"negation_sentiment_label: no 'but' or 'although' in {text!r}")
    return _clause_sentiment(main)
