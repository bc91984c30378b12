"""Readers on small files the tests write: CSV of text and labels, IDX (raw and gzip), MNIST."""

import gzip
import struct

import numpy as np
import pytest

from data import LabelEncoder, load_mnist, read_idx, read_text_csv


# ---------------------------------------------------------------- CSV

def test_read_text_csv_default_columns(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('id,text,label\n1,"good, really good",pos\n2,"two\nlines",neg\n\n'
                    '3,plain,pos\n', encoding="utf-8")
    texts, labels = read_text_csv(path)
    assert texts == ["good, really good", "two\nlines", "plain"]
    assert labels == ["pos", "neg", "pos"]


def test_read_text_csv_custom_columns_delimiter_encoding(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_bytes("Satz\tKlasse\nSchöne Grüße\t1\nÜbel\t0\n".encode("latin-1"))
    texts, labels = read_text_csv(path, text_column="Satz", label_column="Klasse",
                                  encoding="latin-1", delimiter="\t")
    assert texts == ["Schöne Grüße", "Übel"] and labels == ["1", "0"]
    only_texts, none = read_text_csv(path, text_column="Satz", label_column=None,
                                     encoding="latin-1", delimiter="\t")
    assert only_texts == texts and none is None


def test_read_text_csv_byte_order_mark_and_crlf(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefftext,label\r\nhi,1\r\n\"a\r\nb\",2\r\n".encode("utf-8"))
    assert read_text_csv(path) == (["hi", "a\r\nb"], ["1", "2"])      # Windows line ends


def test_read_text_csv_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.csv is empty"):
        read_text_csv(empty)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("sentence,label\nhi,1\n")
    with pytest.raises(ValueError, match=r"no column 'text'; its columns are \['sentence', "
                                         r"'label'\]"):
        read_text_csv(wrong)
    with pytest.raises(ValueError, match="no column 'y'"):
        read_text_csv(wrong, text_column="sentence", label_column="y")
    semi = tmp_path / "semi.csv"
    semi.write_text("text;label\nhi;1\n")
    with pytest.raises(ValueError, match="delimiter"):
        read_text_csv(semi)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncafé,1\n".encode("latin-1"))
    with pytest.raises(ValueError,
                       match=r"latin.csv is not valid utf-8 \(byte 14, line 2: .*encoding="):
        read_text_csv(latin)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("text,label\nok,1\ntoo,many,fields\n")
    with pytest.raises(ValueError, match="record 3 has 3 fields, the header has 2"):
        read_text_csv(ragged)
    with pytest.raises(FileNotFoundError):
        read_text_csv(tmp_path / "missing.csv")


def test_label_encoder():
    enc = LabelEncoder()
    y = enc.fit_transform(["neg", "pos", "neg", "neutral"])
    assert enc.classes_ == ["neg", "neutral", "pos"]
    assert y.dtype == np.int64 and y.tolist() == [0, 2, 0, 1]
    assert enc.inverse_transform(np.array([2, 0])) == ["pos", "neg"]
    numeric = LabelEncoder().fit(["10", "2", "1"])
    assert numeric.classes_ == ["1", "2", "10"]                  # numeric order
    assert LabelEncoder().fit([3, 1.5, 2]).classes_ == [1.5, 2, 3]
    assert LabelEncoder().fit(["b", "10", "a"]).classes_ == ["10", "a", "b"]
    with pytest.raises(ValueError, match="unknown label 'other'"):
        enc.transform(["other"])
    with pytest.raises(ValueError, match=r"index 3 is outside 0..2"):
        enc.inverse_transform([3])
    assert LabelEncoder(classes=["x", "y"]).transform(["y"]).tolist() == [1]


# ---------------------------------------------------------------- IDX

def _idx_bytes(array: np.ndarray, code: int) -> bytes:
    big = array.astype(array.dtype.newbyteorder(">"))
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + big.tobytes()


@pytest.mark.parametrize("dtype,code", [(np.uint8, 0x08), (np.int8, 0x09), (np.int16, 0x0B),
                                        (np.int32, 0x0C), (np.float32, 0x0D),
                                        (np.float64, 0x0E)])
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_every_dtype(tmp_path, dtype, code, compress):
    rng = np.random.default_rng(code)
    array = (rng.standard_normal((3, 4, 2)) * 50).astype(dtype)
    raw = _idx_bytes(array, code)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.shape == (3, 4, 2)
    np.testing.assert_array_equal(out, array)


def test_read_idx_gzip_detected_by_content(tmp_path):
    labels = np.array([5, 0, 4, 1], dtype=np.uint8)
    path = tmp_path / "labels-idx1-ubyte"               # no .gz suffix, gzip content
    path.write_bytes(gzip.compress(_idx_bytes(labels, 0x08)))
    np.testing.assert_array_equal(read_idx(path), labels)


def test_read_idx_errors(tmp_path):
    good = _idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4), 0x08)
    cases = {
        "short": (good[:3], "too short"),
        "magic": (b"\x01\x00" + good[2:], "bad magic number 0x01000802"),
        "dtype": (good[:2] + b"\x07" + good[3:], "bad magic number 0x00000702"),
        "header": (good[:9], "truncated inside its header"),
        "data": (good[:-1], r"is truncated: shape \(3, 4\) of uint8 needs 12 data bytes, "
                            "found 11"),
        "trailing": (good + b"\x00", "has trailing bytes"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=message):
            read_idx(path)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(ValueError, match="damaged or truncated gzip"):
        read_idx(broken)


# ---------------------------------------------------------------- MNIST

def _write_mnist(directory, n_train=5, n_test=3, compress=True):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        raw = _idx_bytes(array, 0x08)
        if compress:
            (directory / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (directory / name).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_load_mnist(tmp_path, compress):
    arrays = _write_mnist(tmp_path, compress=compress)
    (x_train, y_train), (x_test, y_test) = load_mnist(tmp_path)
    assert x_train.shape == (5, 28, 28) and x_train.dtype == np.uint8
    assert y_train.dtype == np.int64 and x_test.shape == (3, 28, 28)
    np.testing.assert_array_equal(x_train, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])


def test_load_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_mnist(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    _write_mnist(tmp_path, compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(
        _idx_bytes(np.zeros(4, dtype=np.uint8), 0x08))
    with pytest.raises(ValueError, match="3 images in .* but 4 labels"):
        load_mnist(tmp_path)
