"""Higher-order gradients: create_graph through the core ops, Hessians, Hessian-vector
products, and saved outputs of 0-d results tied to the graph."""

import numpy as np
import pytest

import engine
from engine import Tensor


def t64(*shape, seed=0, requires_grad=True):
    data = np.random.default_rng(seed).standard_normal(shape)
    return Tensor(data, requires_grad=requires_grad)


def second_derivative(f, x):
    (g,) = engine.grad(f(x).sum(), x, create_graph=True)
    (h,) = engine.grad(g.sum(), x)
    return g.data, h.data


def test_second_derivatives_of_elementwise_functions():
    x = t64(6)
    v = x.data
    sig = 1 / (1 + np.exp(-v))
    cases = {
        "cube": (lambda t: t ** 3, 3 * v ** 2, 6 * v),
        "exp": (engine.exp, np.exp(v), np.exp(v)),
        "tanh": (engine.tanh, 1 - np.tanh(v) ** 2,
                 -2 * np.tanh(v) * (1 - np.tanh(v) ** 2)),
        "sigmoid": (engine.sigmoid, sig * (1 - sig), sig * (1 - sig) * (1 - 2 * sig)),
    }
    for name, (f, d1, d2) in cases.items():
        g, h = second_derivative(f, x)
        np.testing.assert_allclose(g, d1, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(h, d2, rtol=1e-10, atol=1e-12, err_msg=name)


def test_second_derivative_of_softmax_matches_analytic_hessian():
    x = t64(4)
    u = np.random.default_rng(7).standard_normal(4)
    v = np.random.default_rng(8).standard_normal(4)
    # L = <u, softmax(x)>;  H(L)·v computed analytically from s = softmax(x)
    s = np.exp(x.data - x.data.max())
    s /= s.sum()
    (g,) = engine.grad((engine.softmax(x) * Tensor(u)).sum(), x, create_graph=True)
    (hv,) = engine.grad((g * Tensor(v)).sum(), x)
    jac = np.diag(s) - np.outer(s, s)                       # ∂s/∂x
    # ∂/∂x [ J(x)ᵀ u ] : d²sᵢ/dxⱼdxₖ = sᵢ(δᵢⱼ - sⱼ)(δᵢₖ - sₖ) - sᵢ sⱼ (δⱼₖ - sₖ)
    hess = np.zeros((4, 4))
    for i in range(4):
        e = np.eye(4)[i]
        hess += u[i] * (s[i] * np.outer(e - s, e - s) - s[i] * jac)
    np.testing.assert_allclose(g.data, jac.T @ u, rtol=1e-12)
    np.testing.assert_allclose(hv.data, hess @ v, rtol=1e-9, atol=1e-12)


def test_second_derivative_of_matmul_bilinear_form():
    a, b = t64(3, 4), t64(4, 2, seed=1)
    u = t64(3, 2, seed=2, requires_grad=False)
    # L = <u, A B>;  ∂L/∂A = u Bᵀ;  ∂/∂B <∂L/∂A, V> = Aᵀ-free: = Vᵀ u ... check against formula
    (ga,) = engine.grad((engine.matmul(a, b) * u).sum(), a, create_graph=True)
    v = t64(3, 4, seed=3, requires_grad=False)
    (gb,) = engine.grad((ga * v).sum(), b)
    np.testing.assert_allclose(ga.data, u.data @ b.data.T, rtol=1e-12)
    np.testing.assert_allclose(gb.data, v.data.T @ u.data, rtol=1e-12)


def test_hessian_vector_product_of_mlp_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((5, 3)))
    w1 = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w2 = Tensor(rng.standard_normal((4, 2)), requires_grad=True)
    target = Tensor(rng.standard_normal((5, 2)))
    vec = [rng.standard_normal(w1.shape), rng.standard_normal(w2.shape)]

    def loss_fn():
        h = (x @ w1).tanh()
        return (((h @ w2).sigmoid() - target) ** 2).mean()

    g1, g2 = engine.grad(loss_fn(), [w1, w2], create_graph=True)
    dot = (g1 * Tensor(vec[0])).sum() + (g2 * Tensor(vec[1])).sum()
    hv = engine.grad(dot, [w1, w2])

    eps = 1e-5

    def grads_at(sign):
        w1.data += sign * eps * vec[0]
        w2.data += sign * eps * vec[1]
        gs = engine.grad(loss_fn(), [w1, w2])
        w1.data -= sign * eps * vec[0]
        w2.data -= sign * eps * vec[1]
        return [g.data for g in gs]

    plus, minus = grads_at(1), grads_at(-1)
    for h, p, m in zip(hv, plus, minus):
        np.testing.assert_allclose(h.data, (p - m) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_backward_create_graph_builds_differentiable_grad():
    x = t64(3)
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (gg,) = engine.grad(x.grad.sum(), x)
    np.testing.assert_allclose(gg.data, 6 * x.data)


@pytest.mark.parametrize("name", ["exp", "log", "tanh", "sigmoid", "softmax", "log_softmax",
                                  "gelu", "softplus", "logsumexp", "var", "div", "matmul"])
def test_gradgradcheck_of_core_ops(name):
    x = t64(3, 4)
    fns = {
        "exp": engine.exp, "log": lambda t: engine.log(t * t + 1.0), "tanh": engine.tanh,
        "sigmoid": engine.sigmoid, "softmax": engine.softmax,
        "log_softmax": engine.log_softmax, "gelu": engine.gelu, "softplus": engine.softplus,
        "logsumexp": lambda t: engine.logsumexp(t, dim=1), "var": lambda t: t.var(dim=0),
        "div": lambda t: t / (t * t + 1.0), "matmul": lambda t: t @ t.T,
    }
    assert engine.gradgradcheck(fns[name], [x])


SECOND_ORDER = {
    "sin": lambda t: t.sin() * t, "cos": lambda t: t.cos() * t,
    "std": lambda t: t.std(dim=1), "std_all": lambda t: t.std(),
    "norm": lambda t: t.norm(dim=1), "norm_3": lambda t: t.norm(p=3),
    "cumsum": lambda t: (t.cumsum(dim=1) ** 2), "tril": lambda t: (t.tril(-1) * t),
    "triu": lambda t: t.triu() ** 2, "clamp": lambda t: t.clamp(-0.5, 0.5) * t,
    "clamp_tensors": lambda t: t.clamp(t[0] * 0.5, t[1] + 1.0) ** 2,
    "max_dim": lambda t: t.max(dim=1).values ** 2, "sort": lambda t: t.sort(0).values ** 2,
    "topk": lambda t: t.topk(2).values * t[:, :2], "median": lambda t: t.median(1).values ** 3,
    "masked_fill": lambda t: t.masked_fill(t > 0, 1.0) ** 2,
    "repeat": lambda t: t.repeat(2, 1) ** 2, "expand": lambda t: t[:1].expand(3, -1) * t[:3],
    "gather": lambda t: t.gather(1, engine.tensor([[0, 0], [1, 3], [2, 1]])) ** 2,
    "cat_split": lambda t: engine.cat(t.split([1, 3], dim=1)[::-1], dim=1) * t,
    "chunk_stack": lambda t: engine.stack(t.chunk(2, dim=1), dim=0) ** 2,
    "narrow_flip": lambda t: t.narrow(1, 1, 2).flip(0) ** 2,
    "transpose_permute": lambda t: t.transpose(0, 1) @ t.permute(0, 1),
}


@pytest.mark.parametrize("name", list(SECOND_ORDER))
def test_gradgradcheck_of_the_pytorch_surface(name):
    assert engine.gradgradcheck(SECOND_ORDER[name], [t64(3, 4)])


@pytest.mark.parametrize("f", [engine.exp, engine.tanh, engine.sigmoid, engine.sqrt,
                               lambda t: 1.0 / t, lambda t: t ** 3, lambda t: 2.0 ** t],
                         ids=["exp", "tanh", "sigmoid", "sqrt", "rdiv", "cube", "rpow"])
def test_second_order_on_zero_dim_tensors(f):
    """NumPy returns scalars for 0-d results; saved outputs must stay tied to the graph."""
    x = Tensor(np.array(0.7), requires_grad=True)
    assert engine.gradgradcheck(f, [x])
