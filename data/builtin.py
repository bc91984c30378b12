"""Data that is already on the machine: scikit-learn's digits and offline text corpora."""

from __future__ import annotations

import codecs
import contextlib
import importlib
import importlib.resources
import io

import numpy as np


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 handwritten digits bundled with scikit-learn (UCI optical digits).

    Returns ``(images, labels)``: float32 ``(1797, 8, 8)`` with the 0..16 pixel counts
    scaled to [0, 1], and int64 ``(1797,)`` labels 0..9. Needs scikit-learn (the
    ``examples`` extra); nothing is downloaded.
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise ImportError(
            "load_digits needs scikit-learn, which ships the digits: "
            "pip install 'xpgrad[examples]' (or pip install scikit-learn)"
        ) from None
    bunch = sk_load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0))
    return images, np.asarray(bunch.target, dtype=np.int64)


def _python_docs() -> str:
    try:
        topics = importlib.import_module("pydoc_data.topics").topics
    except ImportError:
        raise ImportError("load_text_corpus('python_docs'): this Python was installed without "
                          "pydoc_data (the text of help()); use name='zen' or 'sklearn'") \
            from None
    return "\n\n".join(topics[key].strip("\n") for key in sorted(topics)) + "\n"


def _zen() -> str:
    with contextlib.redirect_stdout(io.StringIO()):   # importing `this` prints the Zen
        this = importlib.import_module("this")
    return codecs.decode(this.s, "rot13") + "\n"


def _sklearn_descr() -> str:
    try:
        descr = importlib.resources.files("sklearn.datasets.descr")
    except ModuleNotFoundError:
        raise ImportError("load_text_corpus('sklearn') needs scikit-learn: pip install "
                          "'xpgrad[examples]'") from None
    files = sorted((f for f in descr.iterdir() if f.name.endswith(".rst")),
                   key=lambda f: f.name)
    return "\n\n".join(f.read_text(encoding="utf-8").strip("\n") for f in files) + "\n"


_CORPORA = {"python_docs": _python_docs, "zen": _zen, "sklearn": _sklearn_descr}


def load_text_corpus(name: str = "python_docs", max_chars: int | None = None) -> str:
    """A plain-text corpus already installed, for character language models.

    - ``'python_docs'`` (default, about 460,000 characters of English prose with code):
      the Python Language Reference topics that ``help('if')`` shows, shipped with CPython
      in the standard-library module ``pydoc_data.topics`` (PSF license), joined in sorted
      topic order. The exact text changes with the Python version.
    - ``'zen'``: *The Zen of Python* (PEP 20), from the standard-library module ``this``
      (about 850 characters; a smoke-test corpus).
    - ``'sklearn'``: scikit-learn's dataset descriptions (``sklearn/datasets/descr/*.rst``,
      BSD license, about 43,000 characters; needs scikit-learn).

    ``max_chars`` keeps only the first characters.
    """
    if name not in _CORPORA:
        raise ValueError(f"load_text_corpus: unknown corpus {name!r}; choose one of "
                         f"{sorted(_CORPORA)}")
    text = _CORPORA[name]()
    return text if max_chars is None else text[:max_chars]
