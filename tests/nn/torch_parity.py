"""Shared by the PyTorch parity tests of the layers: load torch weights into ours, run both
forward and backward, compare outputs, input and parameter gradients, and buffers."""

import numpy as np
import torch

import engine


TOL = {np.float64: 1e-10, np.float32: 1e-5}
TORCH_DT = {np.float64: torch.float64, np.float32: torch.float32}


def assert_close(ours, ref, dtype, what):
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    ours = ours.numpy() if isinstance(ours, engine.Tensor) else np.asarray(ours)
    assert ours.shape == ref.shape, what
    tol = TOL[dtype]
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
    np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol * scale, err_msg=what)


def load_from_torch(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def check(ours, theirs, inputs, dtype, steps=1, seed=0):
    """Forward and backward ``steps`` times on both; compare outputs, gradients, buffers."""
    rng = np.random.default_rng(seed)
    theirs = theirs.to(TORCH_DT[dtype])
    load_from_torch(ours, theirs)
    for p in ours.parameters():
        assert p.dtype == dtype
    for step in range(steps):
        ours_in, torch_in = [], []
        for a in inputs(rng):
            if a.dtype.kind == "f":
                a = a.astype(dtype)
                ours_in.append(engine.tensor(a, requires_grad=True))
                torch_in.append(torch.tensor(a, requires_grad=True))
            else:
                ours_in.append(engine.tensor(a))
                torch_in.append(torch.tensor(a))
        y, yt = ours(*ours_in), theirs(*torch_in)
        assert y.dtype == dtype
        assert_close(y, yt, dtype, f"output, step {step}")
        gy = rng.standard_normal(y.shape).astype(dtype)
        ours.zero_grad()
        theirs.zero_grad()
        y.backward(engine.tensor(gy))
        yt.backward(torch.tensor(gy))
        for i, (a, at) in enumerate(zip(ours_in, torch_in)):
            if at.requires_grad:
                assert_close(a.grad, at.grad, dtype, f"grad of input {i}, step {step}")
        tp = dict(theirs.named_parameters())
        assert [n for n, _ in ours.named_parameters()] == list(tp)
        for name, p in ours.named_parameters():
            if tp[name].grad is None:
                assert p.grad is None or not np.any(p.grad.numpy()), name
            else:
                assert_close(p.grad, tp[name].grad, dtype, f"grad of {name}, step {step}")
        tb = dict(theirs.named_buffers())
        for name, b in ours.named_buffers():
            assert_close(b, tb[name], dtype, f"buffer {name}, step {step}")


def randomize(module, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p))
    return module


DTYPES = [np.float64, np.float32]
