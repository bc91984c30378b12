"""File readers: a CSV of text and labels, the MNIST IDX format, and label <-> index mapping.

Every reader raises ``ValueError`` naming the file and what is wrong with it (missing
column, empty file, bytes that do not decode, truncated or unrecognised IDX data) rather
than an error from deep inside the parser.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from collections.abc import Iterable, Sequence

import numpy as np


def read_text_csv(path: str | os.PathLike, text_column: str = "text",
                  label_column: str | None = "label", encoding: str = "utf-8",
                  delimiter: str = ",") -> tuple[list[str], list[str] | None]:
    """Read a CSV with a header row; return ``(texts, labels)`` as lists of strings.

    ``label_column=None`` reads texts only (``labels`` is None). Quoted fields may hold
    delimiters and newlines (Python's ``csv`` dialect, as Excel and pandas write it). A UTF-8
    byte-order mark is ignored. Turn labels into class indices with :class:`LabelEncoder`.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        content = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"read_text_csv: {path} is not valid {encoding} (byte {exc.start}, line {line}: "
            f"{raw[exc.start:exc.start + 1]!r}, {exc.reason}); pass the file's encoding, "
            "e.g. encoding='latin-1' or 'cp1252'"
        ) from None
    try:
        rows = list(csv.reader(io.StringIO(content, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise ValueError(f"read_text_csv: {path} is not a valid CSV file ({exc})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise ValueError(f"read_text_csv: {path} is empty (expected a header row naming the "
                         f"columns {text_column!r} and {label_column!r})")
    header = [name.strip() for name in rows[0]]
    header[0] = header[0].lstrip("\ufeff")
    wanted = [text_column] + ([label_column] if label_column is not None else [])
    missing = [c for c in wanted if c not in header]
    if missing:
        hint = " (is the delimiter right?)" if len(header) == 1 else ""
        raise ValueError(f"read_text_csv: {path} has no column {missing[0]!r}; its columns "
                         f"are {header}{hint}")
    t_col = header.index(text_column)
    l_col = header.index(label_column) if label_column is not None else None
    texts, labels = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row:     # blank line
            continue
        if len(row) != len(header):
            raise ValueError(f"read_text_csv: {path} record {line} has {len(row)} fields, "
                             f"the header has {len(header)}")
        texts.append(row[t_col])
        if l_col is not None:
            labels.append(row[l_col])
    return texts, (labels if l_col is not None else None)


def _numeric(label):
    """The number a label stands for (1, 2.5, "10"), or None for other labels."""
    if isinstance(label, (bool, np.bool_)):
        return None
    if isinstance(label, (int, float, np.integer, np.floating)):
        return label
    if isinstance(label, str) and label.strip().lstrip("+-").isdigit():
        return int(label)
    return None


class LabelEncoder:
    """Labels <-> class indices 0..k-1 (scikit-learn's names).

    Classes are sorted; when every label is a number or an integer string ("2", "10") they
    sort numerically, so "10" comes after "2"; otherwise as strings. ``fit`` /
    ``transform`` / ``fit_transform`` / ``inverse_transform``; ``classes_`` and
    ``class_to_index`` hold the mapping.
    """

    def __init__(self, classes: Sequence | None = None):
        self.classes_: list = []
        self.class_to_index: dict = {}
        if classes is not None:
            self._set(list(classes))

    def _set(self, classes: list) -> None:
        self.classes_ = classes
        self.class_to_index = {c: i for i, c in enumerate(classes)}

    def fit(self, labels: Iterable) -> LabelEncoder:
        unique = set(labels)
        numeric = all(_numeric(v) is not None for v in unique)
        self._set(sorted(unique, key=_numeric if numeric else str))
        return self

    def transform(self, labels: Iterable) -> np.ndarray:
        """Class indices as int64."""
        out = []
        for v in labels:
            try:
                out.append(self.class_to_index[v])
            except KeyError:
                raise ValueError(f"LabelEncoder: unknown label {v!r}; known classes are "
                                 f"{self.classes_}") from None
        return np.asarray(out, dtype=np.int64)

    def fit_transform(self, labels: Sequence) -> np.ndarray:
        return self.fit(labels).transform(labels)

    def inverse_transform(self, indices) -> list:
        n = len(self.classes_)
        out = []
        for i in np.asarray(indices).reshape(-1).tolist():
            if not 0 <= i < n:
                raise ValueError(f"LabelEncoder: index {i} is outside 0..{n - 1}")
            out.append(self.classes_[i])
        return out

    def __len__(self) -> int:
        return len(self.classes_)


# ---------------------------------------------------------------- IDX (MNIST)

# The third magic byte names the element type; data are stored big-endian.
_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise ValueError(f"read_idx: {path} is a damaged or truncated gzip file ({exc})") \
            from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (MNIST's format), raw or gzip-compressed, into a NumPy array.

    Layout: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), a byte with the number of dimensions d, then d big-endian
    uint32 sizes, then the elements big-endian in C order. The result has native byte
    order; gzip is recognised by its magic bytes, whatever the file name.
    """
    path = os.fspath(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"read_idx: {path} is too short ({len(raw)} bytes) to be an IDX file")
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or code not in _IDX_DTYPES:
        raise ValueError(
            f"read_idx: {path} has bad magic number 0x{raw[:4].hex()}; an IDX file starts "
            "with 0x0000 then a type byte in {08, 09, 0B, 0C, 0D, 0E} and the number of "
            "dimensions"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"read_idx: {path} is truncated inside its header ({len(raw)} bytes, "
                         f"{ndim} dimensions need {header})")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        state = "is truncated" if got < expected else "has trailing bytes"
        raise ValueError(f"read_idx: {path} {state}: shape {shape} of {dtype.newbyteorder('=')} "
                         f"needs {expected} data bytes, found {got}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}


def _find(directory: str, stem: str) -> str:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"load_mnist: neither {stem}.gz nor {stem} is in {directory}")


def load_mnist(directory: str | os.PathLike):
    """Load MNIST (or Fashion-MNIST) from the four standard IDX files in ``directory``.

    Files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
    and ``t10k-labels-idx1-ubyte``, each raw or with ``.gz``. Returns
    ``(x_train, y_train), (x_test, y_test)`` as Keras's ``mnist.load_data()`` does: images
    uint8 ``(N, 28, 28)`` (divide by 255 for [0, 1]), labels int64 ``(N,)``.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"load_mnist: {directory} is not a directory")
    out = []
    for split in ("train", "test"):
        images_path = _find(directory, MNIST_FILES[f"{split}_images"])
        labels_path = _find(directory, MNIST_FILES[f"{split}_labels"])
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or labels.ndim != 1:
            raise ValueError(f"load_mnist: expected images (N, H, W) and labels (N,), got "
                             f"{images.shape} in {images_path} and {labels.shape} in "
                             f"{labels_path}")
        if len(images) != len(labels):
            raise ValueError(f"load_mnist: {len(images)} images in {images_path} but "
                             f"{len(labels)} labels in {labels_path}")
        out.append((images, labels.astype(np.int64)))
    return tuple(out)
