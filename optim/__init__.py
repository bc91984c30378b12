"""Optimizers (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta) with PyTorch's update rules,
defaults and state_dict layout; learning-rate schedulers in :mod:`optim.lr_scheduler`;
gradient clipping; magnitude pruning in :mod:`optim.pruning`.

    >>> import engine, optim
    >>> w = engine.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = optim.SGD([w], lr=0.1)
    >>> (w * w).sum().backward()           # g = 2w
    >>> opt.step()                          # w ← w - 0.1 · 2w
    >>> w
    Tensor([ 0.8, -1.6], requires_grad=True)
"""

from optim import pruning
from optim.optimizer import SGD, Optimizer, required
from optim.adam import Adam, AdamW
from optim.adaptive import Adadelta, Adagrad, RMSprop
from optim.clip import clip_grad_norm_, clip_grad_value_
from optim import lr_scheduler
from engine.distributed import DistributedOptimizer

# The data-parallel wrapper is an optimizer to everything that checks (schedulers included);
# registered here because engine never imports optim.
Optimizer.register(DistributedOptimizer)

__all__ = [
    "Optimizer", "required", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta",
    "clip_grad_norm_", "clip_grad_value_", "lr_scheduler", "pruning",
]
