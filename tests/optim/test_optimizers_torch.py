"""Every optimizer against torch.optim: 20 float64 steps on a small two-layer problem give
the same parameters; state dicts carry over mid-trajectory, also between the two."""

import numpy as np
import pytest

import engine
import optim

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

STEPS = 20
TOL = dict(rtol=1e-12, atol=1e-13)

CASES = [
    ("SGD", {}),
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.01, "momentum": 0.5, "maximize": True}),
    ("Adam", {}),
    ("Adam", {"lr": 0.02, "betas": (0.8, 0.95), "eps": 1e-6}),
    ("Adam", {"lr": 0.02, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.02, "amsgrad": True}),
    ("Adam", {"lr": 0.02, "amsgrad": True, "weight_decay": 0.05, "maximize": True}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.02, "weight_decay": 0.1, "amsgrad": True}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.005, "centered": True}),
    ("RMSprop", {"lr": 0.005, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.005, "alpha": 0.9, "centered": True, "momentum": 0.5,
                 "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.005, "maximize": True}),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}),
    ("Adagrad", {"lr": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.1}),
    ("Adagrad", {"lr": 0.1, "eps": 1e-3, "maximize": True}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-4}),
    ("Adadelta", {"lr": 2.0, "weight_decay": 0.1}),
    ("Adadelta", {"lr": 0.5, "rho": 0.95, "maximize": True}),
]


def _problem(seed=0):
    r = np.random.default_rng(seed)
    params = [r.standard_normal((5, 3)) * 0.5, r.standard_normal(5) * 0.1,
              r.standard_normal((2, 5)) * 0.5, r.standard_normal(2) * 0.1]
    x, y = r.standard_normal((8, 3)), r.standard_normal((8, 2))
    return params, x, y


def _loss(lib, params, x, y):
    """A two-layer tanh network's squared error, written once for both libraries."""
    w1, b1, w2, b2 = params
    tanh = engine.tanh if lib is engine else torch.tanh
    h = tanh(x @ w1.T + b1)
    d = h @ w2.T + b2 - y
    return (d * d).mean()


class Run:
    """Parameters, data and an optimizer on one library, stepped with a closure-free loop."""

    def __init__(self, lib, name, kw, groups=False, seed=0):
        arrays, x, y = _problem(seed)
        if lib is engine:
            self.params = [engine.tensor(a, requires_grad=True) for a in arrays]
            self.x, self.y = engine.tensor(x), engine.tensor(y)
            cls = getattr(optim, name)
        else:
            self.params = [torch.tensor(a, requires_grad=True) for a in arrays]
            self.x, self.y = torch.tensor(x), torch.tensor(y)
            cls = getattr(torch.optim, name)
        self.lib = lib
        if groups:
            spec = [{"params": self.params[:2]},
                    {"params": self.params[2:], "lr": 0.3 * kw.get("lr", 0.01)}]
            self.opt = cls(spec, **kw)
        else:
            self.opt = cls(self.params, **kw)

    def step(self, n=1):
        for _ in range(n):
            self.opt.zero_grad()
            loss = _loss(self.lib, self.params, self.x, self.y)
            loss.backward()
            self.opt.step()

    def values(self):
        return [p.detach().numpy().copy() for p in self.params]


def _assert_same(ours, theirs, tol=TOL):
    for a, b in zip(ours.values(), theirs.values()):
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("name, kw", CASES)
def test_twenty_steps_match_torch(name, kw):
    ours, theirs = Run(engine, name, kw), Run(torch, name, kw)
    before = ours.values()
    ours.step(STEPS)
    theirs.step(STEPS)
    _assert_same(ours, theirs)
    assert any(not np.array_equal(a, b) for a, b in zip(before, ours.values()))
    assert all(p.dtype == np.float64 for p in ours.params)


@pytest.mark.parametrize("fused", [True, False], ids=["kernel", "literal"])
@pytest.mark.parametrize("name, kw", [c for c in CASES if c[0].startswith("Adam")])
def test_adam_matches_torch_on_the_kernel_and_the_literal_path(name, kw, fused):
    """Adam and AdamW run a one-pass kernel unless fusion is off: both follow PyTorch."""
    with engine.use_fused(fused):
        ours, theirs = Run(engine, name, kw), Run(torch, name, kw)
        ours.step(STEPS)
        theirs.step(STEPS)
    _assert_same(ours, theirs)


@pytest.mark.parametrize("name, kw", [c for c in CASES if c[1]][::2])
def test_param_groups_match_torch(name, kw):
    ours, theirs = Run(engine, name, kw, groups=True), Run(torch, name, kw, groups=True)
    ours.step(STEPS)
    theirs.step(STEPS)
    _assert_same(ours, theirs)
    assert ours.opt.param_groups[1]["lr"] == theirs.opt.param_groups[1]["lr"]


@pytest.mark.parametrize("name, kw", CASES)
def test_state_dict_round_trip_mid_trajectory(name, kw, tmp_path):
    straight = Run(engine, name, kw)
    straight.step(STEPS)
    first = Run(engine, name, kw)
    first.step(STEPS // 2)
    engine.save(first.opt.state_dict(), tmp_path / "opt.safetensors")
    resumed = Run(engine, name, kw)
    for p, q in zip(resumed.params, first.params):
        p.data[...] = q.data
    resumed.opt.load_state_dict(engine.load(tmp_path / "opt.safetensors"))
    resumed.step(STEPS - STEPS // 2)
    for a, b in zip(resumed.values(), straight.values()):
        np.testing.assert_array_equal(a, b)


def _torch_state_as_arrays(sd):
    return {"state": {k: {n: (v.numpy() if isinstance(v, torch.Tensor) else v)
                          for n, v in s.items()} for k, s in sd["state"].items()},
            "param_groups": sd["param_groups"]}


@pytest.mark.parametrize("name, kw", CASES[2::3])
def test_state_dict_layout_and_exchange_with_torch(name, kw):
    ours, theirs = Run(engine, name, kw), Run(torch, name, kw)
    ours.step(3)
    theirs.step(3)
    sd, ref = ours.opt.state_dict(), theirs.opt.state_dict()
    stateless = name == "SGD" and not kw.get("momentum")
    assert sorted(sd["state"]) == sorted(ref["state"]) == ([] if stateless else [0, 1, 2, 3])
    for k in ref["state"]:
        assert sorted(sd["state"][k]) == sorted(ref["state"][k])
        for n, v in ref["state"][k].items():
            if n == "step":
                assert sd["state"][k][n] == int(v.item())
            else:
                np.testing.assert_allclose(sd["state"][k][n].numpy(), v.numpy(), **TOL)
    for g, rg in zip(sd["param_groups"], ref["param_groups"]):
        assert g["params"] == rg["params"]
        assert set(g) <= set(rg)
        assert all(g[k] == rg[k] for k in g)
    # PyTorch's state (as arrays) loaded into ours continues PyTorch's trajectory
    resumed = Run(engine, name, kw)
    for p, q in zip(resumed.params, theirs.params):
        p.data[...] = q.detach().numpy()
    resumed.opt.load_state_dict(_torch_state_as_arrays(ref))
    resumed.step(5)
    theirs.step(5)
    _assert_same(resumed, theirs)


def test_float32_parameters_stay_float32_and_match_torch():
    arrays, x, y = _problem(3)
    arrays = [a.astype(np.float32) for a in arrays]
    ours = [engine.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    opt = optim.Adam(ours, lr=0.01, weight_decay=0.01, amsgrad=True)
    ref = torch.optim.Adam(theirs, lr=0.01, weight_decay=0.01, amsgrad=True)
    for _ in range(10):
        for lib, ps, o in ((engine, ours, opt), (torch, theirs, ref)):
            o.zero_grad()
            xx, yy = (engine.tensor(x.astype(np.float32)), engine.tensor(y.astype(np.float32))) \
                if lib is engine else (torch.tensor(x, dtype=torch.float32),
                                       torch.tensor(y, dtype=torch.float32))
            _loss(lib, ps, xx, yy).backward()
            o.step()
    for p, q in zip(ours, theirs):
        assert p.dtype == np.float32
        assert all(v.dtype == np.float32 for k, v in opt.state[p].items() if k != "step")
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_defaults_match_torch():
    p = [engine.tensor([1.0], requires_grad=True)]
    tp = [torch.tensor([1.0], requires_grad=True)]
    for name in ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta"):
        ours = getattr(optim, name)(p).param_groups[0]
        ref = getattr(torch.optim, name)(tp).param_groups[0]
        for k, v in ours.items():
            if k != "params":
                assert ref[k] == v, (name, k)
