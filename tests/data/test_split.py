"""train_test_split: scikit-learn's sizes, stratification and (with a seed) exact splits."""

import numpy as np
import pytest

import engine
from data import train_test_split
from data.split import split_sizes

sk_split = pytest.importorskip("sklearn.model_selection")


@pytest.mark.parametrize("n,test_size,train_size", [
    (10, None, None), (10, 0.25, None), (11, 0.2, None), (11, None, 0.7), (7, 3, None),
    (7, None, 2), (20, 0.3, 0.5), (20, 5, 10), (3, 0.34, None),
])
def test_sizes_match_sklearn(n, test_size, train_size):
    x = np.arange(n)
    ref_test = 0.2 if test_size is None and train_size is None else test_size
    tr, te = sk_split.train_test_split(x, test_size=ref_test, train_size=train_size,
                                       random_state=0)
    assert split_sizes(n, test_size, train_size) == (len(tr), len(te))


def test_test_size_rounds_up_train_size_rounds_down():
    assert split_sizes(11, 0.2) == (8, 3)          # ceil(2.2) = 3 test samples
    assert split_sizes(11, None, 0.5) == (5, 6)    # floor(5.5) = 5 train samples


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_seeded_split_equals_sklearn(seed):
    x = np.arange(40).reshape(20, 2)
    y = np.arange(20) % 3
    ours = train_test_split(x, y, test_size=0.3, seed=seed)
    ref = sk_split.train_test_split(x, y, test_size=0.3, random_state=seed)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", [0, 3])
def test_seeded_stratified_split_equals_sklearn(seed):
    y = np.array([0] * 13 + [1] * 7 + [2] * 5)
    x = np.arange(len(y))
    ours = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    ref = sk_split.train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(a, b)


def test_stratified_proportions():
    y = np.repeat([0, 1, 2], [500, 300, 200])
    x = np.arange(1000)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y)
    assert len(x_te) == 200 and len(x_tr) == 800
    assert np.bincount(y_te).tolist() == [100, 60, 40]
    assert np.bincount(y_tr).tolist() == [400, 240, 160]
    assert sorted(np.concatenate([x_tr, x_te]).tolist()) == list(range(1000))
    np.testing.assert_array_equal(y[x_tr], y_tr)          # rows stay aligned


def test_engine_seed_reproduces_unseeded_split():
    x = np.arange(30)
    engine.manual_seed(8)
    a = train_test_split(x)
    engine.manual_seed(8)
    b = train_test_split(x)
    np.testing.assert_array_equal(a[0], b[0])
    c = train_test_split(x)
    assert a[1].tolist() != c[1].tolist()


def test_no_shuffle_and_kinds_preserved():
    x = list("abcdefghij")
    t = engine.arange(10)
    x_tr, x_te, t_tr, t_te = train_test_split(x, t, test_size=3, shuffle=False)
    assert x_tr == list("abcdefg") and x_te == list("hij")
    assert isinstance(t_tr, engine.Tensor) and t_te.tolist() == [7, 8, 9]
    tup = train_test_split(tuple(range(5)), test_size=1, shuffle=False)
    assert tup == [(0, 1, 2, 3), (4,)]


def test_errors():
    x = np.arange(10)
    with pytest.raises(ValueError, match="different lengths"):
        train_test_split(x, np.arange(9))
    with pytest.raises(ValueError, match=r"test_size=1.5"):
        train_test_split(x, test_size=1.5)
    with pytest.raises(ValueError, match=r"test_size=10 should be"):
        train_test_split(x, test_size=10)
    with pytest.raises(ValueError, match="exceeds"):
        train_test_split(x, test_size=6, train_size=5)
    with pytest.raises(ValueError, match="requires shuffle=True"):
        train_test_split(x, shuffle=False, stratify=x % 2)
    with pytest.raises(ValueError, match=r"classes \[2\] have only 1"):
        train_test_split(x, stratify=np.array([0] * 5 + [1] * 4 + [2]))
    with pytest.raises(ValueError, match="smaller than the number of classes"):
        train_test_split(x, test_size=2, stratify=np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2]))
    with pytest.raises(ValueError, match="train set would be empty"):
        train_test_split(np.arange(3), test_size=0.9)
