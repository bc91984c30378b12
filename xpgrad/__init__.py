"""``xpgrad``: the engine under PyTorch's names, for programs written against ``torch``.

A PyTorch program runs on xpgrad with its import lines changed and nothing else::

    import xpgrad as torch               # was: import torch
    import nn                            # was: import torch.nn as nn
    import nn.functional as F            # was: import torch.nn.functional as F
    import optim                         # was: import torch.optim as optim

Everything ``engine`` offers (tensors and their ops, autograd, dtypes, ``no_grad``,
``manual_seed``, ``save``/``load``) is here, and so are the packages a program reaches
through ``torch.``: ``torch.nn``, ``torch.optim``, ``torch.utils.data`` (the :mod:`data`
package) and ``torch.cuda``. This package sits above all the others and only gathers them;
nothing in xpgrad imports it.

    >>> import xpgrad as torch
    >>> torch.nn.Linear is __import__("nn").Linear
    True
"""

import types

import nn
import optim
from engine import *  # noqa: F401,F403  (the engine's public names)
from engine import __all__ as _engine_names
from engine import backend
from engine import bool, float, int  # noqa: F401,A004  (PyTorch's dtype names)
from xpgrad import utils

cuda = types.ModuleType("xpgrad.cuda", "``torch.cuda``: what a program asks of the GPU.")
cuda.is_available = backend.cuda_is_available      # CuPy imports and sees a GPU
cuda.device_count = backend.device_count            # 0 without CuPy or a GPU
cuda.synchronize = backend.synchronize              # wait for cuda:0's (or device's) work

__all__ = [*_engine_names, "nn", "optim", "utils", "cuda"]
