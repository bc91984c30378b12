"""What PyTorch users look for in nn is there, and is the one object: the loss classes and
functions of ``losses`` under ``nn`` and ``nn.functional``, gradient clipping under
``nn.utils``; and the packages import in any order."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import engine
import losses
import nn
import nn.functional as F
import optim

ROOT = Path(__file__).parents[2]
LOSS_CLASSES = ["CrossEntropyLoss", "MSELoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss",
                "L1Loss", "SmoothL1Loss", "HuberLoss"]
LOSS_FUNCTIONS = ["cross_entropy", "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy",
                  "binary_cross_entropy_with_logits", "smooth_l1_loss", "huber_loss"]


@pytest.mark.parametrize("name", LOSS_CLASSES)
def test_loss_classes_are_the_losses_ones(name):
    assert getattr(nn, name) is getattr(losses, name)
    assert issubclass(getattr(nn, name), nn.Module)


@pytest.mark.parametrize("name", LOSS_FUNCTIONS)
def test_loss_functions_are_the_losses_ones(name):
    assert getattr(F, name) is getattr(losses, name)


def test_a_pytorch_style_training_step_finds_everything_in_nn():
    engine.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = engine.randn(5, 4), engine.tensor([0, 2, 1, 1, 0])
    loss = nn.CrossEntropyLoss()(model(x), y)
    np.testing.assert_allclose(loss.item(), F.cross_entropy(model(x), y).item())
    loss.backward()
    norm = nn.utils.clip_grad_norm_(model.parameters(), 0.1)
    total = np.sqrt(sum((p.grad.numpy() ** 2).sum() for p in model.parameters()))
    assert norm.item() > 0.1 and total == pytest.approx(0.1, rel=1e-4)


def test_clipping_is_optims():
    assert nn.utils.clip_grad_norm_ is optim.clip_grad_norm_
    assert nn.utils.clip_grad_value_ is optim.clip_grad_value_


@pytest.mark.parametrize("first", ["import losses", "import nn", "import nn.functional",
                                   "import losses.modules", "import optim",
                                   "from nn.utils import clip_grad_norm_",
                                   "from losses.classification import cross_entropy"])
def test_the_packages_import_in_any_order(first):
    """nn imports losses' classes, which are nn Modules: no import order may find the
    other package half made."""
    check = ("import nn, losses, nn.functional as F; "
             "assert nn.CrossEntropyLoss is losses.CrossEntropyLoss; "
             "assert F.mse_loss is losses.mse_loss; assert nn.utils.clip_grad_value_")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", f"{first}; {check}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.torch
def test_parameters_to_vector_matches_pytorch_and_is_differentiable():
    torch = pytest.importorskip("torch")
    engine.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                              torch.nn.Linear(4, 2)).double()
    ref.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    vec = nn.utils.parameters_to_vector(model.parameters())
    ref_vec = torch.nn.utils.parameters_to_vector(ref.parameters())
    np.testing.assert_array_equal(vec.numpy(), ref_vec.detach().numpy())
    u = np.random.default_rng(0).standard_normal(vec.shape)
    (vec * engine.tensor(u)).sum().backward()
    (ref_vec * torch.tensor(u)).sum().backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())


@pytest.mark.torch
def test_vector_to_parameters_writes_each_parameter():
    torch = pytest.importorskip("torch")
    model = nn.Linear(3, 2)
    ref = torch.nn.Linear(3, 2)
    v = np.arange(8, dtype=np.float32)
    nn.utils.vector_to_parameters(engine.tensor(v), model.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(v), ref.parameters())
    for p, q in zip(model.parameters(), ref.parameters()):
        assert p.shape == tuple(q.shape) and p.dtype == np.float32
        np.testing.assert_array_equal(p.numpy(), q.detach().numpy())
    with pytest.raises(TypeError, match="expected a Tensor"):
        nn.utils.vector_to_parameters(v, model.parameters())
    with pytest.raises(ValueError, match=r"7 values for parameters of 8"):
        nn.utils.vector_to_parameters(engine.zeros(7), model.parameters())
