"""Text to integers: Keras's word ``Tokenizer`` and ``pad_sequences``.

The word tokenizer reproduces ``keras.preprocessing.text.Tokenizer``:

- a text is lower-cased (``lower``), every character of ``filters`` becomes ``split``, and
  the text is split on ``split`` with empty pieces dropped;
- ``fit_on_texts`` counts words; indices start at 1 in order of decreasing count, ties in
  order of first appearance; index 0 is never a word (it is the padding value); an
  ``oov_token`` takes index 1 and moves every word one place down;
- ``num_words`` keeps the whole vocabulary in ``word_index`` but ``texts_to_sequences`` only
  emits indices ``< num_words`` (the ``num_words - 1`` most frequent words); rarer and unseen
  words become the OOV index, or are dropped when there is no ``oov_token``.

``pad_sequences`` gives every sequence the same length ``maxlen``: ``truncating='pre'``
drops from the front of long sequences (keeping the end), ``'post'`` from the back;
``padding='pre'`` fills short ones with ``value`` in front, ``'post'`` behind.

Characters to integers, for character-level models: :mod:`data.chars`.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def text_to_word_sequence(text: str, filters: str = KERAS_FILTERS, lower: bool = True,
                          split: str = " ") -> list[str]:
    """Keras's word splitter: lower-case, turn ``filters`` characters into ``split``, split."""
    if lower:
        text = text.lower()
    if filters:
        text = text.translate(str.maketrans({c: split for c in filters}))
    return [w for w in text.split(split) if w]


class JsonFileMixin:
    """``save(path)`` writes ``to_json`` (UTF-8), ``load(path)`` reads it back with
    ``from_json``: the file form of a tokenizer's JSON."""

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_json` to ``path`` (UTF-8)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json(indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike):
        """The tokenizer saved to ``path`` by :meth:`save`."""
        with open(path, encoding="utf-8") as f:
            return cls.from_json(f.read())


class Tokenizer(JsonFileMixin):
    """Word-level vocabulary and text <-> index-sequence conversion (Keras semantics).

    Args:
        num_words: emit only indices ``< num_words`` (the most frequent words); None: all.
        oov_token: a token standing for unknown (and capped) words; gets index 1.
        lower: lower-case texts first.
        filters: characters removed (replaced by ``split``); Keras's punctuation by default.
        split: the word separator.
        stop_words: words dropped after splitting, both when fitting and when converting
            (not a Keras option: they never enter the vocabulary and never map to OOV).

    Attributes after ``fit_on_texts``: ``word_index`` (word -> index), ``index_word``,
    ``word_counts`` (in order of first appearance), ``word_docs`` (documents per word),
    ``document_count``.
    """

    def __init__(self, num_words: int | None = None, oov_token: str | None = None,
                 lower: bool = True, filters: str = KERAS_FILTERS, split: str = " ",
                 stop_words: Iterable[str] | None = None):
        if num_words is not None and (not isinstance(num_words, int) or num_words < 1):
            raise ValueError(f"Tokenizer: num_words must be a positive int or None, got "
                             f"{num_words!r}")
        self.num_words = num_words
        self.oov_token = oov_token
        self.lower = lower
        self.filters = filters
        self.split = split
        self.stop_words = sorted(set(stop_words)) if stop_words else []
        self._stop = {w.lower() if lower else w for w in self.stop_words}
        self.word_counts: OrderedDict[str, int] = OrderedDict()
        self.word_docs: defaultdict[str, int] = defaultdict(int)
        self.document_count = 0
        self.word_index: dict[str, int] = {}
        self.index_word: dict[int, str] = {}

    def _words(self, text) -> list[str]:
        if isinstance(text, (list, tuple)):  # pre-split tokens, as Keras accepts
            words = [w.lower() for w in text] if self.lower else list(text)
        elif isinstance(text, str):
            words = text_to_word_sequence(text, self.filters, self.lower, self.split)
        else:
            raise TypeError(f"Tokenizer: a text must be a str or a list of tokens, got "
                            f"{type(text).__name__}")
        return [w for w in words if w not in self._stop] if self._stop else words

    def fit_on_texts(self, texts: Iterable[str]) -> Tokenizer:
        """Count the words of ``texts`` (may be called again to add texts) and re-index."""
        if isinstance(texts, str):
            raise TypeError("Tokenizer.fit_on_texts: expected a list of texts, got one str")
        for text in texts:
            self.document_count += 1
            words = self._words(text)
            for w in words:
                self.word_counts[w] = self.word_counts.get(w, 0) + 1
            for w in set(words):
                self.word_docs[w] += 1
        self._build_index()
        return self

    def _build_index(self) -> None:
        # sorted() is stable: equal counts keep their order of first appearance.
        ranked = sorted(self.word_counts.items(), key=lambda wc: wc[1], reverse=True)
        vocab = [] if self.oov_token is None else [self.oov_token]
        # Keras would index an oov_token that also occurs in the texts twice; keep it at 1.
        vocab.extend(w for w, _ in ranked if w != self.oov_token)
        self.word_index = {w: i for i, w in enumerate(vocab, start=1)}
        self.index_word = {i: w for w, i in self.word_index.items()}

    @property
    def vocab_size(self) -> int:
        """Size of an embedding table for the emitted indices: ``num_words`` if set, else
        ``len(word_index) + 1`` (index 0 is padding)."""
        full = len(self.word_index) + 1
        return full if self.num_words is None else min(self.num_words, full)

    def _oov_index(self) -> int | None:
        return None if self.oov_token is None else self.word_index.get(self.oov_token)

    def texts_to_sequences(self, texts: Iterable[str]) -> list[list[int]]:
        """Each text as a list of word indices (see the module docstring for OOV and caps)."""
        if isinstance(texts, str):
            raise TypeError("Tokenizer.texts_to_sequences: expected a list of texts, got one "
                            "str")
        oov, cap = self._oov_index(), self.num_words
        out = []
        for text in texts:
            seq = []
            for w in self._words(text):
                i = self.word_index.get(w)
                if i is not None and not (cap and i >= cap):
                    seq.append(i)
                elif oov is not None:
                    seq.append(oov)
            out.append(seq)
        return out

    def sequences_to_texts(self, sequences: Iterable[Sequence[int]]) -> list[str]:
        """Index sequences back to space-joined words, as Keras: capped and unknown indices
        (padding 0 included) become the OOV token, or are dropped when there is none. Strip
        padding before decoding if you set an ``oov_token``."""
        oov, cap = self._oov_index(), self.num_words
        out = []
        for seq in sequences:
            words = []
            for num in np.asarray(seq).reshape(-1).tolist():
                word = self.index_word.get(num)
                if word is not None and not (cap and num >= cap):
                    words.append(word)
                elif oov is not None:
                    words.append(self.index_word[oov])
            out.append(" ".join(words))
        return out

    def texts_to_matrix(self, texts: Iterable[str], mode: str = "binary") -> np.ndarray:
        """Bag-of-words rows, one per text: see :meth:`sequences_to_matrix`."""
        return self.sequences_to_matrix(self.texts_to_sequences(texts), mode=mode)

    def sequences_to_matrix(self, sequences, mode: str = "binary") -> np.ndarray:
        """Keras's bag-of-words encodings of index sequences, float32 ``(n, num_words)``
        (``len(word_index) + 1`` columns without a cap).

        ``binary``: 1 if word j occurs; ``count``: occurrences c; ``freq``: c / len(seq);
        ``tfidf``: (1 + log c) * log(1 + D / (1 + docs(j))), D the fitted document count.
        """
        if mode not in ("binary", "count", "freq", "tfidf"):
            raise ValueError(f"Tokenizer.sequences_to_matrix: unknown mode {mode!r}; use "
                             "'binary', 'count', 'freq' or 'tfidf'")
        if not self.num_words and not self.word_index:
            raise ValueError("Tokenizer.sequences_to_matrix: give num_words or fit the "
                             "tokenizer first")
        if mode == "tfidf" and not self.document_count:
            raise ValueError("Tokenizer.sequences_to_matrix: tfidf needs a fitted tokenizer")
        width = self.num_words or len(self.word_index) + 1
        sequences = list(sequences)
        x = np.zeros((len(sequences), width), dtype=np.float32)
        for i, seq in enumerate(sequences):
            n_words = len(seq)
            seq = [j for j in seq if j < width]
            if not seq:
                continue
            counts = np.bincount(np.asarray(seq, dtype=np.int64), minlength=width)
            present = np.nonzero(counts)[0]
            c = counts[present].astype(np.float64)
            if mode == "binary":
                x[i, present] = 1.0
            elif mode == "count":
                x[i, present] = c
            elif mode == "freq":
                x[i, present] = c / n_words
            else:
                docs = np.array([self.word_docs.get(self.index_word.get(j, ""), 0)
                                 for j in present], dtype=np.float64)
                x[i, present] = (1.0 + np.log(c)) * np.log(1.0 + self.document_count
                                                           / (1.0 + docs))
        return x

    # ---------------------------------------------------------------- JSON
    def get_config(self) -> dict:
        return {
            "num_words": self.num_words, "oov_token": self.oov_token, "lower": self.lower,
            "filters": self.filters, "split": self.split, "stop_words": self.stop_words,
            "document_count": self.document_count,
            "word_counts": dict(self.word_counts), "word_docs": dict(self.word_docs),
            "word_index": self.word_index,
        }

    def to_json(self, **json_kwargs) -> str:
        """The settings and vocabulary as JSON (``{"class_name": "Tokenizer", "config":
        {...}}``, Keras's layout with plain objects instead of JSON-in-strings)."""
        return json.dumps({"class_name": "Tokenizer", "config": self.get_config()},
                          ensure_ascii=False, **json_kwargs)

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        """Rebuild a tokenizer from :meth:`to_json` output (Keras's ``to_json`` also reads)."""
        try:
            payload = json.loads(text)
            config = dict(payload["config"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"Tokenizer.from_json: not a tokenizer JSON ({exc})") from None

        def field(name, default):
            value = config.pop(name, default)
            return json.loads(value) if isinstance(value, str) else value  # Keras nests JSON

        if config.pop("char_level", False):
            raise ValueError("Tokenizer.from_json: char_level tokenizers are not supported; "
                             "use data.CharTokenizer")
        word_counts = field("word_counts", {})
        word_docs = field("word_docs", {})
        word_index = field("word_index", {})
        document_count = config.pop("document_count", 0)
        for extra in ("index_word", "index_docs", "analyzer"):
            config.pop(extra, None)
        tok = cls(**config)
        tok.word_counts = OrderedDict(word_counts)
        tok.word_docs = defaultdict(int, word_docs)
        tok.document_count = int(document_count)
        tok.word_index = {w: int(i) for w, i in word_index.items()}
        tok.index_word = {i: w for w, i in tok.word_index.items()}
        return tok



def pad_sequences(sequences, maxlen: int | None = None, dtype="int32", padding: str = "pre",
                  truncating: str = "pre", value=0) -> np.ndarray:
    """Stack sequences into an array ``(len(sequences), maxlen, *item_shape)`` (Keras).

    ``maxlen`` defaults to the longest sequence. Longer sequences lose items at the front
    (``truncating='pre'``) or the back (``'post'``); shorter ones get ``value`` in front
    (``padding='pre'``) or behind (``'post'``). Items may themselves be arrays of one
    common shape. Empty sequences become all ``value``. Where Keras fails (``maxlen=0``,
    an empty list of sequences) this returns an empty array of the right shape.
    """
    if padding not in ("pre", "post"):
        raise ValueError(f'pad_sequences: padding type "{padding}" not understood; use "pre" '
                         'or "post"')
    if truncating not in ("pre", "post"):
        raise ValueError(f'pad_sequences: truncating type "{truncating}" not understood; use '
                         '"pre" or "post"')
    if not hasattr(sequences, "__len__"):
        raise ValueError("pad_sequences: `sequences` must be a list of sequences")
    lengths, item_shape, found = [], (), False
    for s in sequences:
        if not hasattr(s, "__len__"):
            raise ValueError(f"pad_sequences: `sequences` must be a list of iterables; found "
                             f"non-iterable {s!r}")
        lengths.append(len(s))
        if not found and len(s):
            item_shape, found = np.asarray(s).shape[1:], True
    if maxlen is None:
        maxlen = max(lengths, default=0)
    elif not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"pad_sequences: maxlen must be a non-negative int, got {maxlen!r}")
    dtype = np.dtype(dtype)
    if isinstance(value, str) and dtype.kind not in "OUS":
        raise ValueError(f"pad_sequences: value {value!r} is a string but dtype is {dtype}; "
                         "use dtype=object or a string dtype")
    x = np.full((len(lengths), maxlen) + tuple(item_shape), value, dtype=dtype)
    if maxlen == 0:
        return x
    for row, s in enumerate(sequences):
        if not len(s):
            continue
        kept = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        kept = np.asarray(kept, dtype=dtype)
        if kept.shape[1:] != item_shape:
            raise ValueError(f"pad_sequences: sequence {row} has items of shape "
                             f"{kept.shape[1:]}, expected {item_shape} like the first "
                             "non-empty sequence")
        if padding == "post":
            x[row, :len(kept)] = kept
        else:
            x[row, -len(kept):] = kept
    return x
