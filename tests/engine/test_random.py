"""The engine's generators: manual_seed, get_rng_state / set_rng_state (PyTorch's names),
and engine.Generator, a NumPy Generator with torch.Generator's seeding and state methods."""

import numpy as np
import pytest

import engine
from engine import Tensor


def _draws(rng) -> list:
    """A few draws of different kinds, the uint32 one leaving half a word buffered."""
    return [rng.random(3).tolist(), rng.standard_normal(2).tolist(),
            rng.integers(0, 1000, size=3, dtype=np.uint32).tolist(),
            rng.permutation(6).tolist()]


def test_manual_seed_reseeds_the_same_generator_in_place():
    g = engine.default_generator()
    assert engine.manual_seed(5) is g is engine.default_generator()
    assert engine.initial_seed() == 5
    assert _draws(g) == _draws(np.random.default_rng(5))
    with pytest.raises(ValueError, match="non-negative integer"):
        engine.manual_seed(-1)


def test_rng_state_is_a_uint8_tensor_that_restores_every_draw():
    engine.manual_seed(11)
    engine.default_generator().integers(0, 7, size=1, dtype=np.uint32)   # half-word buffered
    state = engine.get_rng_state()
    assert isinstance(state, Tensor) and state.dtype == np.uint8 and state.ndim == 1
    first = _draws(engine.default_generator()) + [engine.randn(4).tolist()]
    engine.set_rng_state(state)
    assert _draws(engine.default_generator()) + [engine.randn(4).tolist()] == first
    engine.set_rng_state(state.numpy())                        # a plain array works too
    assert _draws(engine.default_generator()) == first[:4]


def test_rng_state_round_trips_through_save_and_load(tmp_path):
    engine.manual_seed(3)
    engine.rand(5)
    engine.save({"rng": engine.get_rng_state(), "step": 7}, tmp_path / "ckpt.safetensors")
    expected = engine.rand(6).tolist()
    engine.manual_seed(999)                                   # a different stream
    ckpt = engine.load(tmp_path / "ckpt.safetensors")
    engine.set_rng_state(ckpt["rng"])
    assert engine.rand(6).tolist() == expected


def test_set_rng_state_does_not_replace_the_generator():
    """Code that kept a reference to the generator follows the restored state."""
    engine.manual_seed(1)
    kept = engine.default_generator()
    state = engine.get_rng_state()
    expected = kept.random(4).tolist()
    engine.set_rng_state(state)
    assert engine.default_generator() is kept
    assert kept.random(4).tolist() == expected


@pytest.mark.parametrize("bad, what", [
    (np.zeros(5, dtype=np.uint8), r"\(5,\) uint8"),
    (np.zeros(37, dtype=np.float32), r"\(37,\) float32"),
    ("state", "str"),
])
def test_set_rng_state_names_what_is_wrong(bad, what):
    with pytest.raises(ValueError, match=rf"set_rng_state: .*{what}"):
        engine.set_rng_state(bad)


def test_generator_is_a_numpy_generator_with_torch_methods():
    g = engine.Generator()
    assert isinstance(g, np.random.Generator)
    assert g.initial_seed() == 0 and g.device == "cpu"
    assert g.manual_seed(7) is g and g.initial_seed() == 7
    assert _draws(g) == _draws(np.random.default_rng(7))
    g.manual_seed(7)
    g.random(3)
    state = g.get_state()
    assert isinstance(state, Tensor) and state.dtype == np.uint8
    expected = _draws(g)
    assert g.set_state(state) is g
    assert _draws(g) == expected


def test_generator_is_independent_of_the_engine_generator():
    engine.manual_seed(0)
    before = engine.get_rng_state().numpy()
    g = engine.Generator().manual_seed(0)
    g.permutation(10)
    np.testing.assert_array_equal(engine.get_rng_state().numpy(), before)
    a, b = engine.Generator().manual_seed(4), engine.Generator().manual_seed(4)
    assert a.random(3).tolist() == b.random(3).tolist()


def test_generator_seed_is_fresh_and_reported():
    g = engine.Generator()
    s = g.seed()
    assert isinstance(s, int) and s >= 0 and g.initial_seed() == s
    assert g.random(3).tolist() == np.random.default_rng(s).random(3).tolist()
    with pytest.raises(ValueError, match="unknown device"):
        engine.Generator(device="tpu")


def test_generator_copies_and_pickles_as_an_engine_generator():
    import copy
    import pickle

    g = engine.Generator().manual_seed(12)
    g.random(2)
    for clone in (copy.deepcopy(g), pickle.loads(pickle.dumps(g))):
        assert isinstance(clone, engine.Generator) and clone is not g
        assert clone.initial_seed() == 12 and clone.device == "cpu"
        assert clone.random(3).tolist() == copy.deepcopy(g).random(3).tolist()
    assert copy.deepcopy(g).random(3).tolist() == g.random(3).tolist()
