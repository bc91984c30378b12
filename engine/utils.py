"""``engine.utils.data`` is the :mod:`data` package, where PyTorch has ``torch.utils.data``
(``torch.utils.data.DataLoader`` in a program that imports ``engine as torch``)."""

import data

__all__ = ["data"]
