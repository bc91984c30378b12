"""DataLoader's PyTorch options: num_workers, pin_memory, persistent_workers,
prefetch_factor, worker_init_fn and timeout are accepted (batches are made in the calling
process, so they change nothing), and ``generator`` shuffles with an engine Generator."""

import numpy as np
import pytest

import engine
from data import DataLoader, TensorDataset


def _epochs(loader, n=3) -> list:
    return [np.concatenate([b[0].numpy() for b in loader]).tolist() for _ in range(n)]


def _ds(n=17):
    return TensorDataset(np.arange(n), np.arange(n, dtype=np.float32))


def test_worker_options_give_the_same_batches_as_none():
    calls = []
    engine.manual_seed(8)
    plain = _epochs(DataLoader(_ds(), batch_size=5, shuffle=True))
    engine.manual_seed(8)
    loader = DataLoader(_ds(), batch_size=5, shuffle=True, num_workers=3, pin_memory=True,
                        persistent_workers=True, prefetch_factor=4, timeout=2.5,
                        worker_init_fn=calls.append)
    assert _epochs(loader) == plain
    assert calls == []                     # no worker process is started, none initialized
    assert (loader.num_workers, loader.pin_memory, loader.persistent_workers,
            loader.prefetch_factor, loader.timeout) == (3, True, True, 4, 2.5)
    assert loader.worker_init_fn == calls.append


def test_defaults_follow_pytorch():
    loader = DataLoader(_ds(), batch_size=4)
    assert (loader.num_workers, loader.pin_memory, loader.persistent_workers,
            loader.prefetch_factor, loader.timeout, loader.worker_init_fn,
            loader.generator) == (0, False, False, None, 0, None, None)
    assert DataLoader(_ds(), num_workers=2).prefetch_factor == 2     # PyTorch's default


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_workers=-1), "num_workers must be a non-negative integer, got -1"),
    (dict(num_workers=1.5), "num_workers must be a non-negative integer, got 1.5"),
    (dict(prefetch_factor=2), "prefetch_factor needs num_workers > 0"),
    (dict(num_workers=2, prefetch_factor=0), "prefetch_factor must be a positive integer"),
    (dict(persistent_workers=True), "persistent_workers needs num_workers > 0"),
    (dict(timeout=-1), "timeout must be a non-negative number, got -1"),
    (dict(timeout=5), "timeout needs num_workers > 0"),
])
def test_option_errors_name_the_option(kwargs, message):
    with pytest.raises(ValueError, match=f"DataLoader: {message}"):
        DataLoader(_ds(), **kwargs)
    with pytest.raises(TypeError, match="DataLoader: worker_init_fn must be callable, got int"):
        DataLoader(_ds(), num_workers=1, worker_init_fn=3)


def test_generator_shuffles_with_an_engine_generator():
    g = engine.Generator().manual_seed(5)
    engine.manual_seed(0)
    before = engine.get_rng_state().numpy()
    epochs = _epochs(DataLoader(_ds(), batch_size=4, shuffle=True, generator=g))
    reference = np.random.default_rng(5)
    assert epochs == [reference.permutation(17).tolist() for _ in range(3)]
    np.testing.assert_array_equal(engine.get_rng_state().numpy(), before)   # untouched
    again = _epochs(DataLoader(_ds(), batch_size=4, shuffle=True,
                               generator=engine.Generator().manual_seed(5)))
    assert again == epochs
    shared = engine.Generator().manual_seed(5)
    a = DataLoader(_ds(), batch_size=4, shuffle=True, generator=shared)
    assert a.generator is shared                       # not copied: draws advance it
    _epochs(a, 1)
    reference = np.random.default_rng(5)
    reference.permutation(17)
    assert shared.random() == reference.random()


def test_generator_accepts_a_numpy_generator_and_refuses_other_things():
    epochs = _epochs(DataLoader(_ds(), batch_size=4, shuffle=True,
                                generator=np.random.default_rng(2)), 1)
    assert epochs == [np.random.default_rng(2).permutation(17).tolist()]
    with pytest.raises(TypeError, match="DataLoader: generator must be an engine.Generator"
                                        ".*got int"):
        DataLoader(_ds(), shuffle=True, generator=3)
    with pytest.raises(ValueError, match="DataLoader: pass seed or generator, not both"):
        DataLoader(_ds(), shuffle=True, seed=1, generator=engine.Generator())


def test_generator_without_shuffle_changes_nothing():
    g = engine.Generator().manual_seed(1)
    state = g.get_state().numpy()
    assert _epochs(DataLoader(_ds(), batch_size=4, generator=g), 1) == [list(range(17))]
    np.testing.assert_array_equal(g.get_state().numpy(), state)
