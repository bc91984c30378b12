"""``engine.cuda``: what a program asks of the GPU the way it asks ``torch.cuda``
(``torch.cuda.is_available()`` in a program that imports ``engine as torch``)."""

from __future__ import annotations

from engine import backend


def is_available() -> bool:
    """True when CuPy imports and sees at least one NVIDIA GPU."""
    return backend.cuda_is_available()


def device_count() -> int:
    """The number of GPUs CuPy sees (0 without CuPy or a GPU)."""
    if not backend.cuda_is_available():
        return 0
    return backend.cupy_module().cuda.runtime.getDeviceCount()


def synchronize(device=None) -> None:
    """Wait for the queued work on ``device`` (GPU 0 when None) to finish."""
    backend.synchronize("cuda:0" if device is None else device)


__all__ = ["is_available", "device_count", "synchronize"]
