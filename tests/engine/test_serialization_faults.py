"""Checkpoints under hostile conditions: colliding keys, corrupted bytes, foreign byte
orders, reserved names, killed saves, file modes and missing directories."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import engine
from engine import CheckpointError

ROOT = Path(__file__).resolve().parents[2]


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


def small_checkpoint(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    engine.manual_seed(0)
    engine.save({"model": {"w": engine.randn(2, 3)}, "steps": np.arange(3, dtype=np.int64),
                 "epoch": 3, "lr": 0.5, "name": "run"}, path)
    return path, path.read_bytes()


def outcomes_of_single_bit_flips(path, raw, bits):
    """The bits whose flip loads silently, and those that raise another exception type."""
    silent, other = [], []
    for bit in bits:
        damaged = bytearray(raw)
        damaged[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(damaged))
        try:
            engine.load(path)
        except CheckpointError:
            continue
        except Exception as exc:       # any other type is a failure too
            other.append((bit, f"{type(exc).__name__}: {exc}"))
        else:
            silent.append(bit)
    return silent, other


def test_every_single_bit_flip_in_the_header_is_refused(tmp_path):
    path, raw = small_checkpoint(tmp_path)
    header_end = 8 + int.from_bytes(raw[:8], "little")      # length prefix + JSON header
    silent, other = outcomes_of_single_bit_flips(path, raw, range(header_end * 8))
    assert not silent and not other, (
        f"of {header_end * 8} flips, {len(silent)} loaded silently (bits {silent[:10]}...) "
        f"and {len(other)} raised another exception ({other[:3]}...)")


def test_every_single_bit_flip_in_the_data_is_refused(tmp_path):
    path, raw = small_checkpoint(tmp_path)
    header_end = 8 + int.from_bytes(raw[:8], "little")
    silent, other = outcomes_of_single_bit_flips(path, raw, range(header_end * 8, len(raw) * 8))
    assert not silent and not other, (silent[:10], other[:3])


STALLED_SAVE = """
import os, sys, time
import numpy as np
import engine

def stall(fd):                    # the temporary file is written: signal, then hang
    open(sys.argv[2], "w").close()
    time.sleep(120)

os.fsync = stall
engine.save({"v": np.full(3, 7.0)}, sys.argv[1])
"""


def start_stalled_save(tmp_path, target, name):
    """A process stopped inside ``engine.save(..., target)``, its temporary file written."""
    script, marker = tmp_path / "stalled_save.py", tmp_path / f"{name}.ready"
    script.write_text(STALLED_SAVE)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(script), str(target), str(marker)], env=env)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "save did not start"
        time.sleep(0.02)
    return proc


def test_temporary_file_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    ckpt, other = folder / "c.safetensors", folder / "c.safetensors.bak"
    engine.save({"v": np.zeros(3)}, ckpt)

    def files_made_by(target, name, kill):
        before = set(folder.iterdir())
        proc = start_stalled_save(tmp_path, target, name)
        if kill:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        return proc, set(folder.iterdir()) - before

    _, killed_own = files_made_by(ckpt, "a", kill=True)
    _, killed_other = files_made_by(other, "b", kill=True)
    alive, writing = files_made_by(ckpt, "c", kill=False)
    assert len(killed_own) == len(killed_other) == len(writing) == 1
    try:
        engine.save({"v": np.ones(3)}, ckpt)
        left = set(folder.iterdir())
    finally:
        alive.send_signal(signal.SIGKILL)
        alive.wait()
    assert not killed_own & left                 # the killed save's file is gone,
    assert killed_other <= left                  # another target's is not
    assert writing <= left                       # nor is a live save's
    np.testing.assert_array_equal(engine.load(ckpt)["v"], np.ones(3))


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_saved_file_gets_the_mode_the_umask_gives(tmp_path, umask, mode):
    path = tmp_path / "ckpt.safetensors"
    previous = os.umask(umask)
    try:
        engine.save({"v": np.ones(2)}, path)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == mode


def test_saving_into_a_missing_directory_names_the_target(tmp_path):
    path = tmp_path / "runs" / "ckpt.safetensors"
    with pytest.raises(FileNotFoundError) as info:
        engine.save({"v": np.ones(2)}, path)
    assert str(path) in str(info.value) and "does not exist" in str(info.value)
    assert not path.parent.exists()


def test_temporary_file_taken_for_a_leftover_before_it_is_locked_is_replaced(tmp_path,
                                                                             monkeypatch):
    import fcntl

    path, real_flock, stolen = tmp_path / "ckpt.safetensors", fcntl.flock, []

    def flock(fd, operation):               # a concurrent save's cleanup gets there first
        if not stolen:
            stolen.extend(tmp_path.glob(".ckpt.safetensors.*.tmp"))
            for leftover in stolen:
                leftover.unlink()
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    engine.save({"v": np.ones(3)}, path)
    assert len(stolen) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]
    np.testing.assert_array_equal(engine.load(path)["v"], np.ones(3))


LEGACY = Path(__file__).parent / "data" / "checkpoint-v1.safetensors"


def test_checkpoint_of_the_first_format_still_loads():
    """A file written by the first format (per-array checksums, no header checksum) loads
    with every value it held, and a warning suggests saving it again."""
    with pytest.warns(UserWarning, match="save it again"):
        state = engine.load(LEGACY)
    assert state["model"]["weight"].dtype == np.float32
    np.testing.assert_array_equal(state["model"]["weight"].data,
                                  np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(state["model"]["bias"].data, [0.5, -1.5])
    np.testing.assert_array_equal(state["optimizer"]["state"][0]["exp_avg"],
                                  np.full((2, 3), 0.25))
    assert state["optimizer"]["param_groups"] == [{"lr": 0.001, "betas": (0.9, 0.999),
                                                   "params": [0, 1]}]
    assert (state["epoch"], state["note"], state["best"], state["none"]) == (7, "v1",
                                                                             float("inf"), None)


def test_damaged_array_of_a_first_format_checkpoint_is_refused(tmp_path):
    raw = bytearray(LEGACY.read_bytes())
    raw[-1] ^= 0x10                                 # last byte of the last array
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(bytes(raw))
    with pytest.warns(UserWarning), pytest.raises(CheckpointError, match="checksum"):
        engine.load(damaged)
