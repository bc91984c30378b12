"""Dropout masks on the device: drawn there by the device's own CuPy generator, which
engine.manual_seed seeds; the host generator, and get_rng_state, are left alone."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import engine
import nn
from engine import random

sys.path.insert(0, str(Path(__file__).parent))
from gpu_checks import on_gpu  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1]))
import fake_cupy  # noqa: E402


def _host_state():
    return engine.get_rng_state().numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_a_device_mask_is_drawn_on_the_device_with_its_density_and_scale(cuda, p, dtype):
    engine.manual_seed(4)
    before = _host_state()
    fake_cupy.NAMES_USED.discard("random")
    mask = random.dropout_mask((300, 400), p, dtype, "cuda")
    on_gpu(mask, "mask")
    assert "random" in fake_cupy.NAMES_USED                 # cupy.random drew it
    np.testing.assert_array_equal(_host_state(), before)    # not the host generator
    assert mask.dtype == dtype and mask.shape == (300, 400)
    values = mask.get()
    np.testing.assert_array_equal(np.unique(values), np.array([0.0, 1.0 / (1.0 - p)],
                                                              dtype=dtype))
    kept = (values != 0).mean()
    assert abs(kept - (1.0 - p)) < 4 * np.sqrt(p * (1 - p) / values.size)
    np.testing.assert_array_equal(random.dropout_mask((3, 4), 1.0, dtype, "cuda").get(), 0)


def test_same_seed_same_masks_on_the_device(cuda):
    def masks(seed, dtype=np.float32):
        engine.manual_seed(seed)
        return [random.dropout_mask((50, 60), 0.5, dtype, "cuda").get() for _ in range(2)]

    first, again, other = masks(9), masks(9), masks(10)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])           # the stream moves on
    assert not np.array_equal(first[0], other[0])           # another seed, another stream
    for a, b in zip(masks(9, np.float64), first):           # float64 drops the same ones
        np.testing.assert_array_equal(a != 0, b != 0)


def test_rng_state_is_the_host_generators_alone(cuda):
    """As torch.get_rng_state: restoring it repeats the host's draws, while the device
    generator goes on (its state cannot be saved)."""
    engine.manual_seed(2)
    state = engine.get_rng_state()
    host, device = engine.rand(5).numpy(), random.dropout_mask((40, 40), 0.5, np.float32,
                                                               "cuda").get()
    engine.set_rng_state(state)
    np.testing.assert_array_equal(engine.rand(5).numpy(), host)
    assert not np.array_equal(random.dropout_mask((40, 40), 0.5, np.float32, "cuda").get(),
                              device)


def test_dropout_and_attention_draw_their_masks_on_the_device(cuda):
    x = engine.randn(6, 7, device="cuda", dtype=np.float64)
    q, k, v = (engine.randn(2, 3, 4, device="cuda", dtype=np.float64) for _ in range(3))
    engine.manual_seed(3)
    before = _host_state()
    y = nn.Dropout(0.25)(x)
    out = nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=0.4)
    np.testing.assert_array_equal(_host_state(), before)
    engine.manual_seed(3)
    m = random.dropout_mask(x.shape, 0.25, np.float64, "cuda")
    d = random.dropout_mask((2, 3, 3), 0.4, np.float64, "cuda")
    on_gpu(y)
    on_gpu(out)
    np.testing.assert_allclose(y.numpy(), x.numpy() * m.get(), rtol=1e-15)
    s = q.numpy() @ k.numpy().swapaxes(-1, -2) / 2.0
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(out.numpy(), (p * d.get()) @ v.numpy(), rtol=1e-12)
