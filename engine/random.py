"""The engine's seeded random generators.

One NumPy ``Generator`` serves parameter initialization, dropout and data shuffling, as
``torch.manual_seed`` does for PyTorch: ``manual_seed(s)`` makes a run repeatable. Draws for
a CUDA tensor are made on the host by the same generator and then copied, so a model
initialized with a given seed has the same weights, and draws the same dropout masks, on
either device.
"""

from __future__ import annotations

import numpy as np

from engine import backend

_seed = 0
_generator = np.random.default_rng(_seed)


def manual_seed(seed: int) -> np.random.Generator:
    """Seed every generator the engine uses; returns the (re-created) default generator."""
    global _seed, _generator
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative integer, got {seed!r}")
    _seed = int(seed)
    _generator = np.random.default_rng(_seed)
    return _generator


def initial_seed() -> int:
    """The seed last given to :func:`manual_seed` (0 if never called)."""
    return _seed


def default_generator() -> np.random.Generator:
    """The engine's generator (re-created by :func:`manual_seed`)."""
    return _generator


def get_state() -> dict:
    """The generator's state, to restore with :func:`set_state`."""
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    """Restore a state taken with :func:`get_state`."""
    _generator.bit_generator.state = state


def dropout_mask(shape: tuple, p: float, dtype, device: str):
    """The inverted-dropout mask m / (1 - p), m ~ Bernoulli(1 - p) (zeros for p = 1), of
    ``dtype`` on ``device``: what ``nn.Dropout`` and attention's dropout multiply by.

    The uniforms are float32 draws of the engine's generator on the host, whatever the
    dtype or device, so a seed gives the same mask everywhere (a float64 or a CUDA tensor
    drops the same elements as a float32 CPU one); the mask is then copied to ``device``.
    """
    dtype = np.dtype(dtype)
    keep = _generator.random(shape, dtype=np.float32) >= np.float32(p)
    scale = 0.0 if p >= 1.0 else 1.0 / (1.0 - p)
    return backend.to_device((keep * dtype.type(scale)).astype(dtype), device)
