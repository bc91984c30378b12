"""DataLoader.state_dict / load_state_dict: a loader restored from a checkpoint taken in
the middle of an epoch yields exactly the batches the original had left, and the epochs
after them, as an uninterrupted loader does."""

import numpy as np
import pytest

import engine
from data import DataLoader, TensorDataset
from engine.distributed import DistributedSampler


def _ids(batches) -> list:
    return [b[0].tolist() for b in batches]


def _dataset(n=23):
    return TensorDataset(np.arange(n), np.arange(n) * 10.0)


def _make(kind, ds, **kwargs):
    if kind == "engine":
        return DataLoader(ds, batch_size=4, shuffle=True, **kwargs)
    if kind == "seed":
        return DataLoader(ds, batch_size=4, shuffle=True, seed=5, **kwargs)
    if kind == "generator":
        return DataLoader(ds, batch_size=4, shuffle=True,
                          generator=engine.Generator().manual_seed(9), **kwargs)
    if kind == "sampler":
        sampler = DistributedSampler(ds, num_replicas=2, rank=1, seed=3)
        return DataLoader(ds, batch_size=4, sampler=sampler, **kwargs)
    return DataLoader(ds, batch_size=4, **kwargs)


@pytest.mark.parametrize("kind", ["engine", "seed", "generator", "sampler", "sequential"])
@pytest.mark.parametrize("taken", [0, 2, "all"])       # all: every batch, not yet exhausted
def test_resumed_epoch_and_the_next_ones_equal_an_uninterrupted_loader(kind, taken,
                                                                       tmp_path):
    ds = _dataset()
    engine.manual_seed(0)
    straight = _make(kind, ds)
    epochs = [_ids(straight) for _ in range(3)]
    assert epochs[0] != epochs[1] or kind in ("sampler", "sequential")

    engine.manual_seed(0)
    first = _make(kind, ds)
    assert _ids(first) == epochs[0]
    taken = len(first) if taken == "all" else taken
    it = iter(first)
    assert _ids(next(it) for _ in range(taken)) == epochs[1][:taken]
    engine.save({"loader": first.state_dict(), "rng": engine.get_rng_state()},
                tmp_path / "ckpt.safetensors")

    engine.manual_seed(1234)                             # a different stream until restored
    resumed = _make(kind, ds)
    ckpt = engine.load(tmp_path / "ckpt.safetensors")
    resumed.load_state_dict(ckpt["loader"])
    engine.set_rng_state(ckpt["rng"])
    assert _ids(resumed) == epochs[1][taken:]
    assert _ids(resumed) == epochs[2]


def test_state_between_epochs_only_carries_the_generator():
    ds = _dataset(10)
    a = DataLoader(ds, batch_size=3, shuffle=True, seed=2)
    assert a.state_dict()["in_epoch"] is False            # never iterated
    list(a)
    state = a.state_dict()
    assert state["in_epoch"] is False and state["batches_yielded"] == 0
    expected = _ids(a)
    b = DataLoader(ds, batch_size=3, shuffle=True, seed=2)
    b.load_state_dict(state)
    assert _ids(b) == expected                           # its generator moved on one epoch


def test_state_counts_the_batches_yielded_and_keeps_the_order():
    ds = _dataset(10)
    loader = DataLoader(ds, batch_size=3, shuffle=True, drop_last=True)
    it = iter(loader)
    first = next(it)[0].tolist()
    state = loader.state_dict()
    assert state["in_epoch"] is True and state["batches_yielded"] == 1
    assert state["order"].dtype == np.int64 and sorted(state["order"].tolist()) == list(
        range(10))
    assert state["order"][:3].tolist() == first
    assert set(state) == {"batch_size", "in_epoch", "batches_yielded", "order"}
    assert "generator" in DataLoader(ds, batch_size=3, shuffle=True, seed=1).state_dict()


def test_an_abandoned_epoch_is_resumed_from_where_it_stopped():
    """Breaking out of the loop leaves the epoch in progress, as in PyTorch's stateful
    loaders: the state says which batches are left."""
    ds = _dataset(12)
    engine.manual_seed(4)
    loader = DataLoader(ds, batch_size=5, shuffle=True)
    for step, _ in enumerate(loader):
        if step == 1:
            break
    state = loader.state_dict()
    assert state["in_epoch"] and state["batches_yielded"] == 2
    other = DataLoader(ds, batch_size=5, shuffle=True)
    other.load_state_dict(state)
    assert _ids(other) == [state["order"][10:].tolist()]


def test_load_state_dict_refuses_a_state_of_another_loader():
    ds = _dataset(10)
    loader = DataLoader(ds, batch_size=3, shuffle=True)
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    with pytest.raises(ValueError, match=r"load_state_dict: .*batch_size 3.*batch_size 4"):
        DataLoader(ds, batch_size=4).load_state_dict(state)
    with pytest.raises(ValueError, match=r"load_state_dict: .*10 samples.*11"):
        DataLoader(_dataset(11), batch_size=3).load_state_dict(state)
    with pytest.raises(ValueError, match=r"load_state_dict: .*generator"):
        DataLoader(ds, batch_size=3, shuffle=True).load_state_dict(
            DataLoader(ds, batch_size=3, shuffle=True, seed=1).state_dict())
    with pytest.raises(ValueError, match=r"load_state_dict: .*missing.*order"):
        DataLoader(ds, batch_size=3).load_state_dict({"batch_size": 3, "in_epoch": True})


def test_position_inside_an_epoch_needs_a_sampler_with_len():
    class Unsized:
        def __iter__(self):
            return iter([3, 1, 2])

    loader = DataLoader(_dataset(5), batch_size=2, sampler=Unsized())
    assert loader.state_dict()["in_epoch"] is False
    it = iter(loader)
    assert next(it)[0].tolist() == [3, 1]
    with pytest.raises(TypeError, match="state_dict: .*sampler that has len"):
        loader.state_dict()
    assert next(it)[0].tolist() == [2]


def test_an_iterator_that_never_ran_does_not_use_up_the_restored_epoch():
    """tqdm.auto's bar calls iter() once in its constructor and again when the loop
    starts: the restored position must reach the iterator that runs."""
    ds = _dataset(10)
    engine.manual_seed(6)
    loader = DataLoader(ds, batch_size=3, shuffle=True)
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    resumed = DataLoader(ds, batch_size=3, shuffle=True)
    resumed.load_state_dict(state)
    iter(resumed)                                       # made and dropped, never run
    rest = _ids(resumed)
    assert rest == [state["order"][3:6].tolist(), state["order"][6:9].tolist(),
                    state["order"][9:].tolist()]
    assert _ids(resumed) != rest and len(_ids(resumed)) == 4    # then new epochs
