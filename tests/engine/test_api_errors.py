"""Bad arguments to the PyTorch-named ops raise errors that name the op and the shapes,
dims or dtypes involved."""

from __future__ import annotations

import numpy as np
import pytest

import engine

X = engine.zeros(2, 3)

CASES = [
    (lambda: X.transpose(0, 2), IndexError,
     r"transpose: dim 2 is out of range for a 2-d tensor \(expected in \[-2, 1\]\)"),
    (lambda: X.permute(0, 0), ValueError,
     r"permute: dims \(0, 0\) are not a permutation of the 2 axes of shape \(2, 3\)"),
    (lambda: X.permute(1), ValueError, r"permute: dims \(1,\) are not a permutation"),
    (lambda: X.sum(dim=3), IndexError, "sum: dim 3 is out of range for a 2-d tensor"),
    (lambda: X.amax(dim=(0, 0)), ValueError, r"amax: dim \(0, 0\) names an axis more than"),
    (lambda: X.max(dim=(0, 1)), TypeError, r"max: dim must be an int, got \(0, 1\)"),
    (lambda: engine.zeros(2, 0).max(1), IndexError, r"max: dim 1 of shape \(2, 0\) is empty"),
    (lambda: X.split([1, 1], dim=1), ValueError,
     r"split: sizes \[1, 1\] must be non-negative and add up to 3, the length of dim 1"),
    (lambda: X.split(0, dim=1), ValueError, "split: split_size must be positive, got 0"),
    (lambda: X.chunk(0), ValueError, "chunk: chunks must be a positive int, got 0"),
    (lambda: X.narrow(1, 2, 2), IndexError,
     r"narrow: start 2 and length 2 do not fit dim 1 of length 3 \(shape \(2, 3\)\)"),
    (lambda: X.expand(4, 3), ValueError, r"expand: cannot broadcast shape \(2, 3\) to"),
    (lambda: X.expand(-1, 2, 3), ValueError, "expand: -1 is not allowed for the new leading"),
    (lambda: X.repeat(2), ValueError,
     r"repeat: 1 repeats \(2,\) for a 2-d tensor of shape \(2, 3\): give at least one"),
    (lambda: X.topk(4), ValueError, "topk: k = 4 is out of range for dim -1 of length 3"),
    (lambda: X.masked_fill(engine.zeros(2, 3), 1.0), TypeError,
     r"masked_fill: mask must be bool, got float32 of shape \(2, 3\)"),
    (lambda: X.masked_fill(engine.ones(4, dtype=bool) > 0, 1.0), ValueError,
     r"masked_fill: mask of shape \(4,\) does not broadcast to the input's shape \(2, 3\)"),
    (lambda: X.masked_fill(X > 0, engine.zeros(2)), ValueError,
     r"masked_fill: value must be a number or a 0-d tensor, got shape \(2,\)"),
    (lambda: X.gather(1, engine.tensor([[3]])), IndexError,
     r"gather: index values span \[3, 3\] but dim 1 of input \(2, 3\) has length 3"),
    (lambda: X.gather(1, engine.tensor([0])), ValueError,
     r"gather: index of shape \(1,\) does not fit input of shape \(2, 3\) along dim 1"),
    (lambda: X.gather(1, engine.tensor([[0.5]])), TypeError,
     "gather: index must hold integers, got float32"),
    (lambda: X.norm(p="nuc"), ValueError, "norm: p='nuc' is not supported"),
    (lambda: engine.tensor([1, 2]).norm(), TypeError, "norm: input must be floating point"),
    (lambda: engine.zeros(3).tril(), ValueError, r"tril: expects at least 2 axes, got shape"),
    (lambda: engine.cat([X, engine.zeros(2, 2)]), ValueError,
     r"cat: shapes \(2, 3\), \(2, 2\) do not match off dim 0"),
    (lambda: engine.cat([]), ValueError, "cat: expected a non-empty sequence of tensors"),
    (lambda: engine.stack([X, engine.zeros(3, 2)]), ValueError,
     r"stack: all shapes must be equal, got \(2, 3\), \(3, 2\)"),
    (lambda: X.clamp(), ValueError, "clamp: at least one of min and max must be given"),
    (lambda: X.flatten(1, 0), ValueError, "flatten: start_dim 1 comes after end_dim 0"),
    (lambda: engine.zeros(3).mT, ValueError, r"mT: expects at least 2 axes, got shape \(3,\)"),
    (lambda: engine.zeros(2, 2, 2).t(), ValueError,
     r"t: expects a tensor with at most 2 axes, got shape \(2, 2, 2\)"),
    (lambda: X.var(True, unbiased=False), TypeError, "var: unbiased given twice"),
    (lambda: engine.linspace(0, 1, -1), ValueError, "linspace: steps must be a non-negative"),
    (lambda: X.repeat_interleave(engine.tensor([1, 2]), dim=1), ValueError,
     r"repeat_interleave: repeats of shape \(2,\) must hold one non-negative count per "
     r"element of dim 1 \(length 3\)"),
]


@pytest.mark.parametrize("fn,error,message", CASES, ids=[str(i) for i in range(len(CASES))])
def test_errors_name_the_op_and_the_arguments(fn, error, message):
    with pytest.raises(error, match=message):
        fn()


def test_squeeze_of_an_axis_that_is_not_one_is_a_no_op():
    x = engine.zeros(2, 1, 3)
    assert x.squeeze(0).shape == (2, 1, 3) and x.squeeze((0, 1)).shape == (2, 3)
    np.testing.assert_array_equal(x.squeeze(dim=1).numpy(), np.zeros((2, 3)))
