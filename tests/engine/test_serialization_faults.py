"""Checkpoints under hostile conditions: colliding keys, corrupted bytes, foreign byte
orders, reserved names, killed saves, file modes and missing directories."""

import numpy as np
import pytest

import engine


@pytest.mark.parametrize("obj, first, second, flat", [
    ({"a.b": np.ones(2), "a": {"b": np.zeros(2)}}, "['a.b']", "['a']['b']", "a.b"),
    ({1: np.ones(2), "1": np.zeros(2)}, "[1]", "['1']", "1"),
    ({"a": [np.ones(2)], "a.0": np.zeros(2)}, "['a'][0]", "['a.0']", "a.0"),
])
def test_keys_that_flatten_to_one_name_are_refused(tmp_path, obj, first, second, flat):
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(ValueError) as info:
        engine.save(obj, path)
    message = str(info.value)
    assert first in message and second in message and repr(flat) in message
    assert not path.exists()


def test_same_key_in_different_branches_is_not_a_collision(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    obj = {"a": {"b": np.ones(2)}, "b": {"a": np.zeros(2)}, 1: 5, "1": 6}
    engine.save(obj, path)
    back = engine.load(path)
    np.testing.assert_array_equal(back["a"]["b"], np.ones(2))
    np.testing.assert_array_equal(back["b"]["a"], np.zeros(2))
    assert back[1] == 5 and back["1"] == 6


def test_big_endian_arrays_are_saved_little_endian(tmp_path):
    from safetensors.numpy import load_file

    values = {"f": np.linspace(-2.0, 3.0, 6).reshape(2, 3), "i": np.arange(-2, 3)}
    obj = {k: v.astype(v.dtype.newbyteorder(">")) for k, v in values.items()}
    path = tmp_path / "ckpt.safetensors"
    engine.save(obj, path)
    back = engine.load(path)
    for k, v in values.items():
        assert back[k].dtype == v.dtype and back[k].dtype.isnative
        np.testing.assert_array_equal(back[k], v)
        np.testing.assert_array_equal(load_file(str(path))[k], v)
    assert values["f"].astype("<f8").tobytes() in path.read_bytes()


@pytest.mark.parametrize("obj", [{"__metadata__": np.ones(2)}, {"__metadata__": engine.ones(2)}])
def test_array_named_like_the_safetensors_header_is_refused(tmp_path, obj):
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(ValueError, match=r"\['__metadata__'\].*reserved"):
        engine.save(obj, path)
    assert not path.exists()


def test_metadata_key_above_or_beside_arrays_round_trips(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    obj = {"__metadata__": {"w": np.ones(2), "note": "kept"}, "x": {"__metadata__": 3}}
    engine.save(obj, path)
    back = engine.load(path)
    np.testing.assert_array_equal(back["__metadata__"]["w"], np.ones(2))
    assert back["__metadata__"]["note"] == "kept" and back["x"]["__metadata__"] == 3
