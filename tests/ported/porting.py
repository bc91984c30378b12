"""Run a PyTorch program's source on PyTorch or, with only its import lines changed, on
xpgrad; compare two runs' numbers."""

import types
from pathlib import Path

import numpy as np

import engine

HERE = Path(__file__).parent

# PyTorch's import line -> xpgrad's; nothing else in a program may differ
IMPORTS = {
    "import torch": "import xpgrad as torch",
    "import torch.nn as nn": "import nn",
    "import torch.nn.functional as F": "import nn.functional as F",
    "from torch.nn import functional as F": "from nn import functional as F",
    "import torch.optim as optim": "import optim",
    "from torch.optim.lr_scheduler import StepLR": "from optim.lr_scheduler import StepLR",
    "from torch.utils.data import TensorDataset": "from data import TensorDataset",
    "from torch.nn import TransformerEncoder, TransformerEncoderLayer":
        "from nn import TransformerEncoder, TransformerEncoderLayer",
}


def source(name: str) -> str:
    return (HERE / name).read_text(encoding="utf8")


def ported(text: str) -> str:
    """``text`` with each PyTorch import line replaced by xpgrad's, every other line kept;
    an import of torch without a counterpart in :data:`IMPORTS` is an error."""
    lines = []
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\n")
        if stripped in IMPORTS:
            line = IMPORTS[stripped] + "\n"
        elif stripped.startswith(("import torch", "from torch")):
            raise AssertionError(f"no xpgrad counterpart for {stripped!r}")
        lines.append(line)
    return "".join(lines)


def load(name: str, framework: str) -> types.ModuleType:
    """Program ``name`` as a fresh module running on ``framework`` ('torch' or 'xpgrad')."""
    text = source(name)
    if framework == "xpgrad":
        text = ported(text)
    module = types.ModuleType(f"{Path(name).stem}_{framework}")
    module.__file__ = str(HERE / name)
    exec(compile(text, module.__file__, "exec"), module.__dict__)
    return module


def as_array(value) -> np.ndarray:
    """A host float64 NumPy array of a torch or xpgrad tensor (or a number)."""
    if isinstance(value, engine.Tensor):
        return value.numpy()
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


class Recorder:
    """A training callback that keeps each step's loss and every parameter's gradient."""

    def __init__(self, model):
        self.model = model
        self.losses = []
        self.grads = []

    def __call__(self, *step_and_loss):
        loss = step_and_loss[-1]
        self.losses.append(loss.item())
        self.grads.append({name: as_array(p.grad)
                           for name, p in self.model.named_parameters()})


def assert_same_run(ours: Recorder, theirs: Recorder, rtol: float = 1e-10) -> None:
    """Same losses at every step and the same gradients of every parameter, by name."""
    assert len(ours.losses) == len(theirs.losses) > 0
    np.testing.assert_allclose(ours.losses, theirs.losses, rtol=rtol, atol=0)
    for step, (g, gt) in enumerate(zip(ours.grads, theirs.grads)):
        assert list(g) == list(gt), f"parameter names, step {step}"
        for name in gt:
            scale = float(np.max(np.abs(gt[name])))
            np.testing.assert_allclose(g[name], gt[name], rtol=rtol, atol=rtol * scale,
                                       err_msg=f"gradient of {name}, step {step}")
