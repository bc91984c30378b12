"""Meta-tests: gradcheck must catch deliberately broken backwards, and pass correct ones."""

import numpy as np
import pytest

import engine
from engine import Function, GradcheckError, Tensor
from engine.ops.utils import sum_to


def rand(*shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


class MulDroppedTerm(Function):
    """y = a * b + a, with the backward forgetting the "+ a" term."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b + a

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        return gy * b, gy * a            # should be gy * (b + 1) for a


class MatMulTransposedGrad(Function):
    """Y = A @ B with gA computed as (Bᵀ... the wrong way round): gA = (gY @ Bᵀ)ᵀᵀ of the
    transposed problem, i.e. B @ gYᵀ transposed incorrectly (square case, shapes agree)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        return (gy @ b.T).T, a.T @ gy   # gA transposed


class AddMissingReduction(Function):
    """y = a + b with b broadcast, the backward not summing gb back to b's shape."""

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, gy):
        return gy, gy


class SoftmaxZeroGrad(Function):
    """Softmax whose backward returns zeros: passes a sum-based check, not ours."""

    @staticmethod
    def forward(ctx, x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    @staticmethod
    def backward(ctx, gy):
        return gy * 0.0


class MulCorrect(Function):
    """y = a * b, correct backward (the control)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        return sum_to(gy * b, a.shape), sum_to(gy * a, b.shape)


def test_dropped_term_is_caught():
    with pytest.raises(GradcheckError, match="input 0"):
        engine.gradcheck(MulDroppedTerm.apply, [rand(3, 4), rand(3, 4, seed=1)])


def test_transposed_gradient_is_caught():
    with pytest.raises(GradcheckError, match="input 0 of shape \\(3, 3\\)"):
        engine.gradcheck(MatMulTransposedGrad.apply, [rand(3, 3), rand(3, 3, seed=1)])


def test_missing_broadcast_reduction_is_caught():
    with pytest.raises(GradcheckError, match="shape"):
        engine.gradcheck(AddMissingReduction.apply, [rand(3, 4), rand(4, seed=1)])


def test_softmax_returning_zeros_is_caught():
    with pytest.raises(GradcheckError, match="analytic 0"):
        engine.gradcheck(SoftmaxZeroGrad.apply, [rand(2, 5)])


def test_softmax_zero_grad_would_pass_a_plain_sum_check():
    """Why the upstream gradient is random: with ones, the broken softmax looks right."""
    x = rand(2, 5)
    SoftmaxZeroGrad.apply(x).sum().backward()
    x2 = rand(2, 5)
    engine.softmax(x2).sum().backward()
    np.testing.assert_allclose(x.grad.data, x2.grad.data, atol=1e-12)


def test_correct_backward_passes_and_reports_true():
    assert engine.gradcheck(MulCorrect.apply, [rand(3, 4), rand(4, seed=1)]) is True


def test_random_direction_mode_catches_errors_in_large_inputs():
    big = rand(40, 30)
    with pytest.raises(GradcheckError, match="random direction"):
        engine.gradcheck(MulDroppedTerm.apply, [big, rand(40, 30, seed=1)],
                         full_jacobian_max=100)
    assert engine.gradcheck(MulCorrect.apply, [big, rand(40, 30, seed=1)],
                            full_jacobian_max=100)


def test_failure_message_names_input_element_and_values():
    with pytest.raises(GradcheckError) as info:
        engine.gradcheck(MulDroppedTerm.apply, [rand(2, 2), rand(2, 2, seed=1)])
    msg = str(info.value)
    assert "input 0" in msg and "element (" in msg
    assert "analytic" in msg and "numeric" in msg


def test_raise_exception_false_returns_false():
    assert engine.gradcheck(MulDroppedTerm.apply, [rand(2), rand(2, seed=1)],
                            raise_exception=False) is False


def test_parameters_are_checked():
    """A parameter list is perturbed in place and checked like an input."""
    w = rand(3, seed=2)
    x = Tensor(np.random.default_rng(3).standard_normal((2, 3)))
    assert engine.gradcheck(lambda x: MulCorrect.apply(x, w), [x], params=[w])
    with pytest.raises(GradcheckError, match="parameter"):
        engine.gradcheck(lambda x: MulDroppedTerm.apply(w, x[0]), [x], params=[w])


def test_float32_parameters_are_refused():
    w = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        engine.gradcheck(lambda x: x * w, [rand(3)], params=[w])


def test_gradgradcheck_catches_wrong_second_derivative():
    class CubeWrongSecond(Function):
        """y = x³ with gx = 3x²·gy written via a saved constant: first order right,
        second order wrong (the saved 3x² is not connected to x)."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(3 * x * x)
            return x ** 3

        @staticmethod
        def backward(ctx, gy):
            (d,) = ctx.saved_tensors
            return gy * d

    x = rand(4)
    assert engine.gradcheck(CubeWrongSecond.apply, [x])
    with pytest.raises(GradcheckError):
        engine.gradgradcheck(CubeWrongSecond.apply, [x])
    assert engine.gradgradcheck(lambda t: t ** 3, [x])
