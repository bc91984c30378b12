"""Gradient descent on y = θ0 + θ1·x with the classic ½Σ squared error (FORMULAS F1-F3).

    J(θ0, θ1) = ½ Σᵢ (yᵢ - (θ0 + θ1 xᵢ))²
    ∂J/∂θ0 = -Σᵢ (yᵢ - ŷᵢ),   ∂J/∂θ1 = -Σᵢ (yᵢ - ŷᵢ) xᵢ
    θ ← θ - α ∇θ J
"""

import argparse

import numpy as np

import engine


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    engine.manual_seed(args.seed)
    rng = engine.default_generator()
    x = rng.uniform(-1, 1, size=50).astype(np.float32)
    y = (2.0 + 3.0 * x + 0.1 * rng.standard_normal(50)).astype(np.float32)
    x_t, y_t = engine.tensor(x), engine.tensor(y)

    theta0 = engine.zeros((), requires_grad=True)
    theta1 = engine.zeros((), requires_grad=True)
    for epoch in range(args.epochs):
        y_hat = theta0 + theta1 * x_t
        loss = 0.5 * ((y_t - y_hat) ** 2).sum()
        theta0.grad = theta1.grad = None
        loss.backward()
        with engine.no_grad():
            theta0.data -= args.lr * theta0.grad.data
            theta1.data -= args.lr * theta1.grad.data
        if epoch % 20 == 0 or epoch == args.epochs - 1:
            print(f"epoch {epoch:4d}  loss {loss.item():10.5f}  "
                  f"theta0 {theta0.item():.4f}  theta1 {theta1.item():.4f}")
    A = np.stack([np.ones_like(x), x], axis=1)
    closed = np.linalg.lstsq(A, y, rcond=None)[0]
    print(f"closed-form least squares: theta0 {closed[0]:.4f}  theta1 {closed[1]:.4f}")


if __name__ == "__main__":
    main()
