"""Linear regression by gradient descent, the classic way, and the gradient check that
catches the articles' wrong gradient (docs/formulas.md, F1-F4).

    model (F2)             ŷ = θ0 + θ1·x
    loss (F2, F4)          J(θ0, θ1) = ½ Σᵢ (yᵢ - ŷᵢ)²
    its gradient           ∂J/∂θ0 = -Σᵢ (yᵢ - ŷᵢ),   ∂J/∂θ1 = -Σᵢ (yᵢ - ŷᵢ)·xᵢ
    gradient descent (F1)  θ ← θ - α ∇θ J

The articles print ∇θ0 J = (1/n) Σ (yᵢ - ŷᵢ) and ∇θ1 J = (1/n) Σ (yᵢ - ŷᵢ)·xᵢ (F3): the
sign is wrong (a step against it climbs J) and the 1/n belongs to the mean loss, not to ½Σ.
The last part of this program writes that formula as the backward of an engine.Function
and lets engine.gradcheck compare it with central differences: the check rejects it and
accepts autograd's gradient (and the one derived above).

Data: y = 4 + 3x + noise, x ~ U(0, 2), split 60/20/20 into training, validation and
test; gradient descent on the whole training set per step (``--batch-size`` smaller than
the training set turns it into mini-batch gradient descent); the result is compared with
the closed-form least-squares solution.

    python examples/linear_regression.py [--epochs 200] [--lr 0.005]
"""

from __future__ import annotations

import numpy as np

import engine
import nn
from common import History, Run, make_parser, print_report, progress, save_graph, setup
from data import DataLoader, TensorDataset, train_test_split

TRUE_THETA0, TRUE_THETA1, NOISE = 4.0, 3.0, 0.5


class Line(nn.Module):
    """ŷ = θ0 + θ1·x, the two parameters starting at 0."""

    def __init__(self):
        super().__init__()
        self.theta0 = nn.Parameter(np.zeros((), dtype=np.float32))
        self.theta1 = nn.Parameter(np.zeros((), dtype=np.float32))

    def forward(self, x):
        return self.theta0 + self.theta1 * x


def half_sse(y_hat, y):
    """J = ½ Σᵢ (yᵢ - ŷᵢ)², the classic loss."""
    return 0.5 * ((y - y_hat) ** 2).sum()


def mse(y_hat, y) -> float:
    """(1/n) Σᵢ (yᵢ - ŷᵢ)² (F4), comparable across sets of different sizes."""
    return float(((y - y_hat) ** 2).mean().item())


# ---------------------------------------------------------------- the gradient check

class ArticleLoss(engine.Function):
    """J = ½ Σ (y - θ0 - θ1 x)² with the backward the articles print (F3, wrong):

        gθ0 = (1/n) Σ (yᵢ - ŷᵢ),   gθ1 = (1/n) Σ (yᵢ - ŷᵢ)·xᵢ
    """

    once_differentiable = True      # backward uses the residuals, an intermediate

    @staticmethod
    def forward(ctx, theta0, theta1, x, y):
        r = y - (theta0 + theta1 * x)                      # residuals yᵢ - ŷᵢ
        ctx.save_for_backward(r, x)
        return 0.5 * (r * r).sum()

    @staticmethod
    def backward(ctx, gJ):
        r, x = ctx.saved_tensors
        n = r.shape[0]
        return gJ * r.sum() / n, gJ * (r * x).sum() / n, None, None


class DerivedLoss(ArticleLoss):
    """The same J with the gradient derived by the chain rule:

        gθ0 = -Σ (yᵢ - ŷᵢ),   gθ1 = -Σ (yᵢ - ŷᵢ)·xᵢ
    """

    @staticmethod
    def backward(ctx, gJ):
        r, x = ctx.saved_tensors
        return -gJ * r.sum(), -gJ * (r * x).sum(), None, None


def check_gradients(x, y, at=(0.0, 0.0), lr=0.005) -> dict:
    """Article's gradient, derived gradient and autograd's against central differences.

    The check is made away from the minimum: at the minimum every gradient is 0, whatever
    its sign or scale, and any formula would pass.
    """
    x = engine.tensor(x, dtype=np.float64)
    y = engine.tensor(y, dtype=np.float64)
    losses = {
        "articles (F3)": lambda t0, t1: ArticleLoss.apply(t0, t1, x, y),
        "derived by hand": lambda t0, t1: DerivedLoss.apply(t0, t1, x, y),
        "autograd": lambda t0, t1: half_sse(t0 + t1 * x, y),
    }

    def J(t0, t1):
        return float(half_sse(t0 + t1 * x, y).item())

    eps = 1e-6
    numeric = ((J(at[0] + eps, at[1]) - J(at[0] - eps, at[1])) / (2 * eps),
               (J(at[0], at[1] + eps) - J(at[0], at[1] - eps)) / (2 * eps))
    print(f"\nGradient check at θ = {at}, float64 central differences "
          f"(engine.gradcheck, random upstream gradient):")
    print(f"  {'':18}{'∂J/∂θ0':>14}{'∂J/∂θ1':>14}   gradcheck")
    print(f"  {'numeric':18}{numeric[0]:14.4f}{numeric[1]:14.4f}")
    verdicts = {}
    for name, fn in losses.items():
        t0 = engine.tensor(at[0], dtype=np.float64, requires_grad=True)
        t1 = engine.tensor(at[1], dtype=np.float64, requires_grad=True)
        g0, g1 = engine.grad(fn(t0, t1), [t0, t1])
        try:
            engine.gradcheck(fn, [t0, t1])
            verdict, why = True, "passed"
        except engine.GradcheckError as exc:
            verdict, why = False, "FAILED"
            reason = str(exc)
        verdicts[name] = verdict
        print(f"  {name:18}{g0.item():14.4f}{g1.item():14.4f}   {why}")
        if not verdict:
            print(f"      ({reason})")
    # Descending along the articles' "gradient" is ascending along the true one.
    t0 = engine.tensor(at[0], dtype=np.float64, requires_grad=True)
    t1 = engine.tensor(at[1], dtype=np.float64, requires_grad=True)
    a0, a1 = engine.grad(losses["articles (F3)"](t0, t1), [t0, t1])
    before = J(at[0], at[1])
    after = J(at[0] - lr * a0.item(), at[1] - lr * a1.item())
    print(f"  one step θ ← θ - {lr}·(F3 gradient) moves J from {before:.2f} to {after:.2f}: "
          f"{'uphill' if after > before else 'downhill'}")
    return verdicts


def main(argv=None) -> dict:
    parser = make_parser("linear_regression", __doc__, epochs=200, lr=0.005, batch_size=120)
    parser.add_argument("--samples", type=int, default=200,
                        help="points generated, split 60/20/20 (default 200)")
    args = setup(parser.parse_args(argv))
    n = 40 if args.smoke else args.samples

    # ---- data: y = 4 + 3x + noise, drawn from the engine generator (seeded by setup)
    rng = engine.default_generator()
    x = rng.uniform(0.0, 2.0, size=n).astype(np.float32)
    y = (TRUE_THETA0 + TRUE_THETA1 * x + NOISE * rng.standard_normal(n)).astype(np.float32)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, seed=args.seed)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5,
                                                    seed=args.seed)
    print(f"{len(x_train)} training, {len(x_val)} validation, {len(x_test)} test points; "
          f"true θ0 = {TRUE_THETA0}, θ1 = {TRUE_THETA1}, noise σ = {NOISE}")
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size,
                        shuffle=True, device=args.device)
    xs = {name: engine.tensor(a, device=args.device) for name, a in
          (("train", x_train), ("val", x_val), ("test", x_test))}
    ys = {name: engine.tensor(a, device=args.device) for name, a in
          (("train", y_train), ("val", y_val), ("test", y_test))}

    # ---- gradient descent (F1) on J = ½ Σ (y - ŷ)² (F2)
    model = Line().to(args.device)
    history = History(args.out, args.epochs)
    run = Run(args, model=model, loader=loader, history=history)
    print_every = max(1, args.epochs // 10)
    print("\nGradient descent trajectory (J on the training set, MSE = (1/n) Σ (y - ŷ)²):")
    for epoch in progress(run.epochs(), "gradient descent", total=args.epochs,
                          initial=run.epoch):
        for step, (xb, yb) in enumerate(loader, start=run.batch):
            J = half_sse(model(xb), yb)
            model.zero_grad()
            J.backward()                                   # θ.grad = ∂J/∂θ
            if epoch == 1 and step == 0:
                save_graph(J, model, args.out)
            with engine.no_grad():
                for theta in model.parameters():
                    theta.data -= args.lr * theta.grad.data     # θ ← θ - α ∇θ J
            run.batch_done()
        with engine.no_grad():
            J_train = half_sse(model(xs["train"]), ys["train"]).item()
            train_mse = mse(model(xs["train"]), ys["train"])
            val_mse = mse(model(xs["val"]), ys["val"])
        history.log(epoch, echo=epoch <= 3 or epoch % print_every == 0, J=J_train,
                    train_mse=train_mse, val_mse=val_mse,
                    theta0=model.theta0.item(), theta1=model.theta1.item())
        run.epoch_done()

    # ---- the closed form: θ = argmin ‖Aθ - y‖², A = [1 x] (normal equations, float64)
    A = np.stack([np.ones_like(x_train), x_train], axis=1).astype(np.float64)
    closed = np.linalg.lstsq(A, y_train.astype(np.float64), rcond=None)[0]
    history.plot(title="y = θ0 + θ1·x by gradient descent", log_scale=("J", "mse"),
                 references={"theta0": ("closed form", closed[0]),
                             "theta1": ("closed form", closed[1])})
    gd = np.array([model.theta0.item(), model.theta1.item()])
    closed_test_mse = float(np.mean((y_test - (closed[0] + closed[1] * x_test)) ** 2))
    with engine.no_grad():
        test_mse = mse(model(xs["test"]), ys["test"])
    results = {
        "theta0": float(gd[0]), "theta1": float(gd[1]),
        "closed_form_theta0": float(closed[0]), "closed_form_theta1": float(closed[1]),
        "max_abs_diff_to_closed_form": float(np.max(np.abs(gd - closed))),
        "test_mse": test_mse, "closed_form_test_mse": closed_test_mse,
        "seconds_per_epoch": history.seconds_per_epoch,
    }

    # ---- the articles' gradient (F3) against the check
    verdicts = check_gradients(x_train, y_train, lr=args.lr)
    results["gradcheck_articles_F3"] = verdicts["articles (F3)"]
    results["gradcheck_derived"] = verdicts["derived by hand"]
    results["gradcheck_autograd"] = verdicts["autograd"]

    history.save_json(test=results)
    print_report("test", results)
    print(f"\nwrote {args.out / 'curves.png'}, {args.out / 'checkpoint.safetensors'}")
    return results


if __name__ == "__main__":
    main()
