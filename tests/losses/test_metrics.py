"""Metrics against scikit-learn on random labels."""

import math

import numpy as np
import pytest

import engine
from losses import metrics

sk = pytest.importorskip("sklearn.metrics")


def _labels(seed, n=60, k=4):
    r = np.random.default_rng(seed)
    return r.integers(0, k, size=n), r.integers(0, k, size=n)


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_and_confusion_matrix_match_sklearn(seed):
    t, p = _labels(seed)
    assert metrics.accuracy(t, p) == sk.accuracy_score(t, p)
    cm = metrics.confusion_matrix(t, p)
    np.testing.assert_array_equal(cm, sk.confusion_matrix(t, p, labels=np.arange(4)))
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(metrics.confusion_matrix(t, p, num_classes=6),
                                  sk.confusion_matrix(t, p, labels=np.arange(6)))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("average", ["macro", "micro", None])
@pytest.mark.parametrize("zero_division", [0, 1, math.nan])
def test_multiclass_scores_match_sklearn(seed, average, zero_division):
    t, p = _labels(seed, n=12 + seed, k=5)    # short: some classes never predicted
    for ours, ref in ((metrics.precision, sk.precision_score),
                      (metrics.recall, sk.recall_score), (metrics.f1_score, sk.f1_score)):
        np.testing.assert_allclose(
            ours(t, p, average=average, zero_division=zero_division),
            ref(t, p, average=average, zero_division=zero_division), rtol=1e-14)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("pos_label", [0, 1])
@pytest.mark.parametrize("zero_division", [0, 1])
def test_binary_scores_match_sklearn(seed, pos_label, zero_division):
    r = np.random.default_rng(seed)
    t = r.integers(0, 2, size=20)
    p = r.integers(0, 2, size=20) if seed else np.zeros(20, dtype=np.int64)
    for ours, ref in ((metrics.precision, sk.precision_score),
                      (metrics.recall, sk.recall_score), (metrics.f1_score, sk.f1_score)):
        got = ours(t, p, pos_label=pos_label, zero_division=zero_division)
        assert isinstance(got, float)
        assert got == pytest.approx(ref(t, p, pos_label=pos_label,
                                        zero_division=zero_division), rel=1e-14)


def test_zero_division_cases():
    t, p = np.array([0, 0, 0]), np.array([0, 0, 0])
    assert metrics.precision(t, p) == 0.0                   # no positive predicted
    assert metrics.recall(t, p, zero_division=1) == 1.0
    assert math.isnan(metrics.f1_score(t, p, zero_division=math.nan))
    assert metrics.f1_score([1, 1], [0, 0]) == 0.0          # TP = 0 but FN > 0


def test_accepts_tensors_and_scores():
    t = engine.tensor([0, 2, 1, 1])
    logits = engine.tensor([[3.0, 0, 0], [0, 0, 1.0], [0, 2.0, 0], [5.0, 0, 0]])
    assert metrics.accuracy(t, logits) == 0.75
    np.testing.assert_array_equal(metrics.confusion_matrix(t, logits),
                                  [[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    assert metrics.f1_score(t, logits, average="micro") == 0.75


def test_metric_errors():
    with pytest.raises(ValueError, match=r"f1_score: target is multiclass \(labels \[0, 1, 2\]"
                                         r"\) but average='binary'"):
        metrics.f1_score([0, 1, 2], [0, 1, 1])
    with pytest.raises(ValueError, match="pos_label=2 is not a valid label"):
        metrics.precision([0, 1], [1, 1], pos_label=2)
    with pytest.raises(ValueError, match="average must be one of"):
        metrics.recall([0, 1], [1, 1], average="weighted")
    with pytest.raises(ValueError, match="different numbers of samples: 3 and 2"):
        metrics.accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\), got range \[0, 3\]"):
        metrics.confusion_matrix([0, 1, 3], [0, 1, 1], num_classes=2)
    with pytest.raises(ValueError, match="zero_division must be 0, 1 or nan"):
        metrics.precision([0, 1], [1, 1], zero_division=0.5)
