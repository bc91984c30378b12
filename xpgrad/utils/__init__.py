"""``torch.utils`` in xpgrad: ``utils.data`` is the :mod:`data` package (``Dataset``,
``TensorDataset``, ``DataLoader``, ``random_split``, ...)."""

import data

__all__ = ["data"]
