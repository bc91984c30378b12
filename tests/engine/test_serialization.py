"""Checkpoints: safetensors round trip, refusal of pickles and damaged files, atomic save."""

import io
import os
import pickle

import numpy as np
import pytest

import engine
import nn
from engine import CheckpointError, Tensor


def state():
    return {
        "model": {"linear.weight": engine.randn(3, 4), "linear.bias": engine.zeros(3),
                  "steps": np.arange(5, dtype=np.int64)},
        "optimizer": {"state": {0: {"step": 7, "exp_avg": engine.randn(3, 4, dtype=np.float64)}},
                      "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1],
                                        "nesterov": False, "name": None,
                                        "max_norm": float("inf")}]},
        "epoch": 3,
    }


def assert_same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a.data, b.data)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


def test_round_trip_keeps_structure_types_and_values(tmp_path):
    s = state()
    path = tmp_path / "ckpt.safetensors"
    engine.save(s, path)
    assert_same(s, engine.load(path))


def test_file_is_plain_safetensors(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    rng = np.random.default_rng(0)
    arrays = {f"a.{dtype}": np.abs(rng.standard_normal((2, 3)) * 50).astype(dtype)
              for dtype in ("float64", "float32", "float16", "int64", "uint64", "int32",
                            "uint32", "int16", "uint16", "int8", "uint8", "bool", "complex64")}
    arrays["empty"] = np.zeros((0, 4), dtype=np.float32)
    arrays["scalar"] = np.array(2.5)
    path = tmp_path / "ckpt.safetensors"
    engine.save({"x": arrays, "w": engine.randn(3, 4)}, path)
    theirs = load_file(str(path))
    ours = engine.load(path)
    assert set(theirs) == {f"x.{k}" for k in arrays} | {"w"}
    for k, v in arrays.items():
        assert theirs[f"x.{k}"].dtype == v.dtype and theirs[f"x.{k}"].shape == v.shape
        np.testing.assert_array_equal(theirs[f"x.{k}"], v)
        np.testing.assert_array_equal(ours["x"][k], v)
    np.testing.assert_array_equal(theirs["w"], ours["w"].data)
    with safe_open(str(path), "numpy") as f:
        assert f.metadata()["format"].startswith("xpgrad-checkpoint")


def test_save_does_not_modify_or_move_what_it_saves(tmp_path):
    w = engine.randn(4, 6)
    view = Tensor._make(w.data[:, ::2], None, 0)            # non-contiguous
    before = view.data.copy()
    engine.save({"w": view}, tmp_path / "a.safetensors")
    assert not view.data.flags.c_contiguous
    np.testing.assert_array_equal(view.data, before)
    assert view.device == "cpu"


def test_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(CheckpointError, match="pickle"):
        engine.load(path)
    assert not marker.exists()


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    engine.save(state(), path)
    raw = path.read_bytes()
    for cut in (4, 100, len(raw) - 10):
        path.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match="truncated|corrupted"):
            engine.load(path)


def test_corrupted_data_is_refused_by_checksum(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    engine.save(state(), path)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF                                         # flip bits in the tensor data
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        engine.load(path)


def test_corrupted_header_is_refused(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    engine.save(state(), path)
    raw = bytearray(path.read_bytes())
    raw[10:20] = b"\x00" * 10
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError):
        engine.load(path)


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    engine.save({"v": engine.ones(3)}, path)
    good = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        engine.save({"v": engine.zeros(3)}, path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]   # no temp left
    np.testing.assert_array_equal(engine.load(path)["v"].data, np.ones(3))


def test_unsupported_values_raise_clear_errors(tmp_path):
    with pytest.raises(TypeError, match="cannot store set"):
        engine.save({"a": {1, 2}}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="keys must be str or int"):
        engine.save({(1, 2): 3}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="cannot store Linear at ''; save its state_dict"):
        engine.save(nn.Linear(2, 3), tmp_path / "x.safetensors")


def test_open_files_in_place_of_paths(tmp_path):
    """PyTorch's ``with open(path, "wb") as f: torch.save(sd, f)``, and a file in memory;
    the bytes are those a path gets."""
    s, path = state(), tmp_path / "ckpt.pt"
    with open(path, "wb") as f:
        engine.save(s, f)
    engine.save(s, tmp_path / "by_path.pt")
    assert path.read_bytes() == (tmp_path / "by_path.pt").read_bytes()
    with open(path, "rb") as f:
        assert_same(s, engine.load(f))
    buffer = io.BytesIO()
    engine.save(s, buffer)
    buffer.seek(0)
    assert_same(s, engine.load(buffer, map_location="cpu", weights_only=True))
    with open(path, "r+b") as f:
        f.seek(12)
        f.write(b"\x00")
        f.seek(0)
        with pytest.raises(CheckpointError, match=r"ckpt\.pt: no xpgrad header checksum"):
            engine.load(f)


def test_map_location_names_a_device(tmp_path):
    path = tmp_path / "ckpt.pt"
    engine.save(state(), path)
    assert_same(state_like := engine.load(path), engine.load(path, map_location="cpu"))
    assert state_like["model"]["linear.bias"].device == "cpu"
    with pytest.raises(TypeError, match="map_location must name a device"):
        engine.load(path, map_location={"cuda:0": "cpu"})
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        engine.load(path, map_location="tpu")
