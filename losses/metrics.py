"""Classification metrics on the host (NumPy): accuracy, precision, recall, F1 and the
confusion matrix (docs/formulas.md, F14 metrics), computed as scikit-learn does.

Inputs may be Tensors (on any device), NumPy or CuPy arrays, or lists. ``y_pred`` may be
labels (N,) or scores / probabilities / logits (N, C), whose arg-max over axis 1 is the
predicted label. With TP, FP, FN the true positives, false positives and false negatives
of a class:

    precision = TP / (TP + FP),   recall = TP / (TP + FN),
    F1 = 2 · precision · recall / (precision + recall) = 2 TP / (2 TP + FP + FN).

A ratio whose denominator is 0 takes the value ``zero_division`` (0 by default, as
scikit-learn's default without its warning; 1.0 or NaN also allowed; NaN scores are left out
of the 'macro' average, as scikit-learn does).

    >>> from losses import metrics
    >>> metrics.accuracy([0, 1, 1, 2], [0, 1, 2, 2])
    0.75
    >>> metrics.f1_score([0, 1, 1, 0], [0, 1, 0, 0])   # P = 1, R = 1/2
    0.6666666666666666
"""

from __future__ import annotations

import math

import numpy as np

from engine import backend
from engine.tensor import Tensor

AVERAGES = ("binary", "macro", "micro", None)


def _host(y, op: str, name: str) -> np.ndarray:
    if isinstance(y, Tensor):
        y = y.data
    y = backend.to_numpy(y) if backend.is_cuda_array(y) else np.asarray(y)
    if y.ndim > 2:
        raise ValueError(f"{op}: {name} must be 1-D labels (or (N, C) scores for y_pred), "
                         f"got shape {y.shape}")
    return y


def _pair(op: str, y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predicted labels), both 1-D and of one length."""
    t = _host(y_true, op, "y_true")
    p = _host(y_pred, op, "y_pred")
    if t.ndim != 1:
        raise ValueError(f"{op}: y_true must be 1-D labels, got shape {t.shape}")
    if p.ndim == 2:
        p = p.argmax(axis=1)                   # scores -> the arg-max class
    if t.shape != p.shape:
        raise ValueError(f"{op}: y_true and y_pred hold different numbers of samples: "
                         f"{t.shape[0]} and {p.shape[0]}")
    return t, p


def accuracy(y_true, y_pred) -> float:
    """Fraction of samples whose predicted label equals the true one: (1/n) Σ [ŷᵢ = yᵢ]."""
    t, p = _pair("accuracy", y_true, y_pred)
    if t.size == 0:
        raise ValueError("accuracy: no samples")
    return float(np.mean(t == p))


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """``M[i, j]`` = number of samples of true class i predicted as class j (int64).

    Labels are integers in [0, num_classes); ``num_classes=None`` takes the largest label
    seen plus one, so row i is always class i (scikit-learn instead keeps only the labels
    present, which differs when some class never occurs).
    """
    op = "confusion_matrix"
    t, p = _pair(op, y_true, y_pred)
    for name, y in (("y_true", t), ("y_pred", p)):
        if y.size and y.dtype.kind not in "iu" and not np.all(np.mod(y, 1) == 0):
            raise ValueError(f"{op}: {name} must hold integer class labels, got {y.dtype}")
    t, p = t.astype(np.int64), p.astype(np.int64)
    seen = max(int(t.max(initial=-1)), int(p.max(initial=-1))) + 1
    k = seen if num_classes is None else int(num_classes)
    lo = min(int(t.min(initial=0)), int(p.min(initial=0)))
    if lo < 0 or seen > k:
        raise ValueError(f"{op}: labels must lie in [0, {k}), got range [{lo}, {seen - 1}]")
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _divide(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    out = np.full(num.shape, zero_division, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _scores(op: str, y_true, y_pred, average, pos_label, zero_division):
    """Per-label (or pooled, for 'micro') precision, recall and F1."""
    if average not in AVERAGES:
        raise ValueError(f"{op}: average must be one of {AVERAGES}, got {average!r}")
    if not (zero_division in (0, 1) or (isinstance(zero_division, float)
                                        and math.isnan(zero_division))):
        raise ValueError(f"{op}: zero_division must be 0, 1 or nan, got {zero_division!r}")
    t, p = _pair(op, y_true, y_pred)
    labels, inverse = np.unique(np.concatenate([t, p]), return_inverse=True)
    k = labels.size
    cm = np.bincount(inverse[:t.size] * k + inverse[t.size:], minlength=k * k).reshape(k, k)
    tp, pred_sum, true_sum = np.diag(cm), cm.sum(axis=0), cm.sum(axis=1)
    if average == "binary":
        if k > 2:
            raise ValueError(f"{op}: target is multiclass (labels {labels.tolist()}) but "
                             "average='binary'; choose average='macro' or 'micro'")
        hit = np.flatnonzero(labels == pos_label)
        if hit.size == 0 and k == 2:
            raise ValueError(f"{op}: pos_label={pos_label!r} is not a valid label; it should "
                             f"be one of {labels.tolist()}")
        sel = hit[:1]
        tp, pred_sum, true_sum = tp[sel], pred_sum[sel], true_sum[sel]
        if sel.size == 0:                      # pos_label absent from both: nothing counted
            tp = pred_sum = true_sum = np.zeros(1, dtype=np.int64)
    elif average == "micro":
        tp, pred_sum, true_sum = tp.sum(keepdims=True), pred_sum.sum(keepdims=True), \
            true_sum.sum(keepdims=True)
    precision = _divide(tp, pred_sum, zero_division)
    recall = _divide(tp, true_sum, zero_division)
    f1 = _divide(2.0 * tp, (true_sum + pred_sum).astype(np.float64), zero_division)
    return precision, recall, f1


def _average(values: np.ndarray, average):
    if average is None:
        return values
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")


def precision(y_true, y_pred, average: str | None = "binary", pos_label=1,
              zero_division: float = 0) -> float | np.ndarray:
    """TP / (TP + FP): for ``pos_label`` ('binary'), averaged over the labels seen in
    either input ('macro'), from pooled counts ('micro'), or per label (None)."""
    return _average(_scores("precision", y_true, y_pred, average, pos_label,
                            zero_division)[0], average)


def recall(y_true, y_pred, average: str | None = "binary", pos_label=1,
           zero_division: float = 0) -> float | np.ndarray:
    """TP / (TP + FN), averaged as in :func:`precision`."""
    return _average(_scores("recall", y_true, y_pred, average, pos_label,
                            zero_division)[1], average)


def f1_score(y_true, y_pred, average: str | None = "binary", pos_label=1,
             zero_division: float = 0) -> float | np.ndarray:
    """2 TP / (2 TP + FP + FN), the harmonic mean of precision and recall, per label and
    then averaged as in :func:`precision` ('macro' averages the per-label F1 scores)."""
    return _average(_scores("f1_score", y_true, y_pred, average, pos_label,
                            zero_division)[2], average)
