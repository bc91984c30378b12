"""Characters to integers for character-level models: ``CharTokenizer``.

Its vocabulary is a fixed order of special tokens, an optional unknown token and the
characters; it encodes a text to an int64 array and decodes one back, and saves to JSON
as :class:`data.text.Tokenizer` does. Sequences of its ids are padded with
:func:`data.text.pad_sequences`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np

from data.text import JsonFileMixin


class CharTokenizer(JsonFileMixin):
    """Characters <-> indices for character-level models.

    ``CharTokenizer(chars=None, specials=(), unk_token=None, lower=False)``: the vocabulary
    is ``specials`` (indices 0, 1, ...), then ``unk_token`` if given, then the characters in
    sorted order (``chars`` given up front, or learned by :meth:`fit`). With specials
    ``("<pad>", "<bos>", "<eos>")`` index 0 is padding, as ``pad_sequences`` expects.
    Unknown characters map to ``unk_token``, or raise ``KeyError`` naming them.
    """

    def __init__(self, chars: Iterable[str] | None = None, specials: Sequence[str] = (),
                 unk_token: str | None = None, lower: bool = False):
        self.specials = list(specials)
        self.unk_token = unk_token
        self.lower = lower
        if len(set(self.specials)) != len(self.specials) or unk_token in self.specials:
            raise ValueError(f"CharTokenizer: special tokens must be distinct, got "
                             f"{self.specials} and unk_token={unk_token!r}")
        self.chars: list[str] = []
        self._set_chars(chars or [])

    def _set_chars(self, chars: Iterable[str]) -> None:
        chars = sorted(set(chars) | set(self.chars))
        long_ = [c for c in chars if len(c) != 1]
        if long_:
            raise ValueError(f"CharTokenizer: characters must have length 1, got {long_[:5]}")
        self.chars = chars
        self.itos = self.specials + ([self.unk_token] if self.unk_token is not None else [])
        self.itos += [c for c in chars if c not in self.itos]
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    def fit(self, texts: str | Iterable[str]) -> CharTokenizer:
        """Add every character of ``texts`` (one str or several) to the vocabulary."""
        if isinstance(texts, str):
            texts = [texts]
        seen: set[str] = set()
        for t in texts:
            seen.update(t.lower() if self.lower else t)
        self._set_chars(seen)
        return self

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def index(self, token: str) -> int:
        """The index of a character or special token."""
        try:
            return self.stoi[token]
        except KeyError:
            raise KeyError(f"CharTokenizer: {token!r} is not in the vocabulary") from None

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> np.ndarray:
        """``text`` as an int64 array; ``add_bos``/``add_eos`` wrap it in ``"<bos>"`` /
        ``"<eos>"``, which must be among the specials."""
        if self.lower:
            text = text.lower()
        unk = self.stoi.get(self.unk_token) if self.unk_token is not None else None
        ids = [self.stoi.get(c, unk) for c in text]
        if unk is None and None in ids:
            missing = sorted({c for c, i in zip(text, ids) if i is None})
            raise KeyError(f"CharTokenizer.encode: characters {missing} are not in the "
                           "vocabulary and there is no unk_token")
        if add_bos:
            ids.insert(0, self.index("<bos>"))
        if add_eos:
            ids.append(self.index("<eos>"))
        return np.asarray(ids, dtype=np.int64)

    def decode(self, ids, skip_specials: bool = True, stop_at_eos: bool = False) -> str:
        """Indices back to text; special tokens are left out unless ``skip_specials=False``;
        ``stop_at_eos`` ends the text at the first ``"<eos>"``."""
        eos = self.stoi.get("<eos>")
        special = set(range(len(self.specials)))
        out = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if not 0 <= i < len(self.itos):
                raise IndexError(f"CharTokenizer.decode: index {i} is outside the vocabulary "
                                 f"of {len(self.itos)}")
            if stop_at_eos and i == eos:
                break
            if skip_specials and i in special:
                continue
            out.append(self.itos[i])
        return "".join(out)

    def to_json(self, **json_kwargs) -> str:
        return json.dumps({"class_name": "CharTokenizer", "config": {
            "chars": self.chars, "specials": self.specials, "unk_token": self.unk_token,
            "lower": self.lower}}, ensure_ascii=False, **json_kwargs)

    @classmethod
    def from_json(cls, text: str) -> CharTokenizer:
        try:
            config = json.loads(text)["config"]
            return cls(**config)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"CharTokenizer.from_json: not a CharTokenizer JSON ({exc})") \
                from None
