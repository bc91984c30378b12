"""Shared fixtures: the device and kernel-path parameters and the Hypothesis profiles."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import engine
from engine import backend

settings.register_profile(
    "default", max_examples=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "quick", max_examples=10, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def pytest_collection_modifyitems(config, items):
    """Skip GPU-marked tests where CuPy has no GPU."""
    if backend.cuda_is_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and an NVIDIA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=DEVICES)
def device(request):
    """Every device-aware test runs once per device; CUDA cases skip without a GPU."""
    return request.param


@pytest.fixture(params=["fused", "reference"])
def path(request):
    """A test that takes ``path`` runs once with the fused kernels and once with the literal
    reference formulas (``engine.use_fused``)."""
    with engine.use_fused(request.param == "fused"):
        yield request.param


@pytest.fixture
def restore_threads():
    """Put the engine's thread count, BLAS's and Numba's back after the test (they are
    process-wide)."""
    import numba

    from engine import threads

    count, blas, nb = threads._count, threads.get_blas_threads(), numba.get_num_threads()
    yield
    threads._count = count
    if blas is not None:
        threads.set_blas_threads(blas)
    numba.set_num_threads(nb)


@pytest.fixture(autouse=True)
def _isolate_engine_state():
    """Each test starts with seed 0 and float32 default, whatever the previous one did."""
    engine.manual_seed(0)
    engine.set_default_dtype(np.float32)
    yield
    engine.set_default_dtype(np.float32)


@pytest.fixture
def host_dropout_masks(monkeypatch):
    """Dropout masks drawn by the host generator and copied to the data's device, as for
    CPU data: a CPU run and a GPU run of the same seed then drop the same elements, and
    their results compare exactly (a GPU draws its own masks with its own generator)."""
    from engine import random

    draw = random.dropout_mask
    monkeypatch.setattr(random, "dropout_mask", lambda shape, p, dtype, device:
                        backend.to_device(draw(shape, p, dtype, "cpu"), device))
