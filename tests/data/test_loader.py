"""Dataset, TensorDataset, Subset, random_split, default_collate and DataLoader."""

from collections import namedtuple

import numpy as np
import pytest

import engine
from data import (
    DataLoader, Dataset, Subset, TensorDataset, batch_fetcher, default_collate, random_split,
)
from engine import Tensor


class Squares(Dataset):
    """A per-sample dataset (no fast path) returning (x, x**2) as float32 scalars."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.float32(i), {"sq": np.array([i * i], dtype=np.int64), "name": f"s{i}"}


def _order(loader):
    return np.concatenate([b[0].numpy() for b in loader]).astype(np.int64).tolist()


# ---------------------------------------------------------------- datasets

def test_dataset_is_abstract():
    with pytest.raises(TypeError):
        Dataset()

    class Half(Dataset):
        def __len__(self):
            return 1

    with pytest.raises(TypeError):
        Half()


def test_tensor_dataset_rows_and_types():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    y = engine.tensor([0, 1, 0, 1])
    ds = TensorDataset(x, y, [1.5, 2.5, 3.5, 4.5])
    assert len(ds) == 4
    xi, yi, zi = ds[2]
    assert isinstance(xi, Tensor) and xi.shape == (3,) and xi.dtype == np.float32
    np.testing.assert_array_equal(xi.numpy(), x[2])
    assert yi.shape == () and yi.dtype == np.int64 and yi.item() == 0
    assert zi.dtype == np.float32 and zi.item() == 3.5       # Python floats -> float32
    assert ds[-1][1].item() == 1
    assert ds.tensors[0].data is x                            # no copy
    with pytest.raises(IndexError, match="out of range"):
        ds[4]


def test_tensor_dataset_length_mismatch_error():
    with pytest.raises(ValueError, match=r"same size in the first dimension.*\(5, 2\), \(4,\)"):
        TensorDataset(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(np.float32(1.0))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()


def test_subset_indexes_parent():
    ds = TensorDataset(np.arange(10))
    sub = Subset(ds, [7, 2, 5])
    assert len(sub) == 3
    assert [sub[k][0].item() for k in range(3)] == [7, 2, 5]
    nested = Subset(sub, [2, 0])
    assert [nested[k][0].item() for k in range(2)] == [5, 7]
    np.testing.assert_array_equal(batch_fetcher(nested)(np.array([1, 0]))[0].numpy(), [7, 5])
    with pytest.raises(IndexError, match=r"\[10\]"):
        Subset(ds, [1, 10])


def test_random_split_partition_and_seed():
    ds = TensorDataset(np.arange(10))
    parts = random_split(ds, [3, 7], seed=1)
    assert [len(p) for p in parts] == [3, 7]
    items = sorted(p[k][0].item() for p in parts for k in range(len(p)))
    assert items == list(range(10))                               # disjoint and complete
    again = random_split(ds, [3, 7], seed=1)
    assert parts[0].indices.tolist() == again[0].indices.tolist()
    assert parts[0].indices.tolist() == np.random.default_rng(1).permutation(10)[:3].tolist()


def test_random_split_fractions_follow_pytorch():
    ds = list(range(11))
    # floors 3, 3, 4 (10): the remainder 1 goes to the first split
    assert [len(p) for p in random_split(ds, [0.3, 0.3, 0.4])] == [4, 3, 4]
    engine.manual_seed(5)
    a = random_split(ds, [0.5, 0.5])
    engine.manual_seed(5)
    b = random_split(ds, [0.5, 0.5])
    assert a[0].indices.tolist() == b[0].indices.tolist()
    with pytest.raises(ValueError, match="sum to 9"):
        random_split(ds, [4, 5])
    with pytest.raises(ValueError, match="fractions summing to 1"):
        random_split(ds, [0.5, 0.2])


@pytest.mark.torch
@pytest.mark.parametrize("n", [7, 11, 100])
@pytest.mark.parametrize("fractions", [[0.3, 0.3, 0.4], [0.5, 0.5], [0.1, 0.2, 0.3, 0.4],
                                       [1 / 3, 1 / 3, 1 / 3]])
def test_random_split_fraction_lengths_match_torch(n, fractions):
    torch_data = pytest.importorskip("torch.utils.data")
    expected = [len(p) for p in torch_data.random_split(list(range(n)), fractions)]
    assert [len(p) for p in random_split(list(range(n)), fractions)] == expected


# ---------------------------------------------------------------- collate

def test_default_collate_dtypes():
    out = default_collate([1, 2, 3])
    assert out.dtype == np.int64 and out.tolist() == [1, 2, 3]
    out = default_collate([1.0, 2])
    assert out.dtype == np.float32
    assert default_collate([True, False]).dtype == np.bool_
    assert default_collate([np.float64(1.0), np.float64(2.0)]).dtype == np.float64
    assert default_collate([np.zeros(3, np.float32)] * 2).dtype == np.float32
    imgs = default_collate([np.zeros((2, 2, 3), np.uint8)] * 4)
    assert imgs.shape == (4, 2, 2, 3) and imgs.dtype == np.uint8
    assert default_collate(["a", "b"]) == ["a", "b"]


def test_default_collate_structures():
    batch = [(np.float32(i), {"sq": np.array([i * i]), "name": f"s{i}"}) for i in range(3)]
    x, d = default_collate(batch)
    assert x.dtype == np.float32 and x.tolist() == [0.0, 1.0, 2.0]
    assert d["sq"].shape == (3, 1) and d["sq"].tolist() == [[0], [1], [4]]
    assert d["name"] == ["s0", "s1", "s2"]
    lists = default_collate([[1, 2.0], [3, 4.0]])
    assert isinstance(lists, list) and lists[0].dtype == np.int64
    Pair = namedtuple("Pair", "a b")
    p = default_collate([Pair(1, np.ones(2)), Pair(2, np.zeros(2))])
    assert isinstance(p, Pair) and p.a.tolist() == [1, 2] and p.b.shape == (2, 2)
    t = default_collate([engine.tensor([1.0, 2.0]), engine.tensor([3.0, 4.0])])
    assert t.shape == (2, 2) and t.dtype == np.float32


def test_default_collate_errors():
    with pytest.raises(ValueError, match=r"different shapes \[\(2,\), \(3,\)\].*pad_sequences"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(TypeError, match="cannot collate samples of type object"):
        default_collate([object(), object()])
    with pytest.raises(ValueError, match="empty"):
        default_collate([])


# ---------------------------------------------------------------- loader

def test_loader_batches_in_order_and_len():
    ds = TensorDataset(np.arange(10), np.arange(10) * 2.0)
    loader = DataLoader(ds, batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 == len(batches)
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    assert _order(loader) == list(range(10))
    assert batches[0][1].dtype == np.float64          # arrays keep their dtype
    dropped = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(dropped) == 2 == len(list(dropped))
    assert len(DataLoader(ds, batch_size=5, drop_last=True)) == 2
    assert len(DataLoader(TensorDataset(np.arange(0)), batch_size=3)) == 0


def test_shuffle_reproduced_by_manual_seed_and_epochs_differ():
    ds = TensorDataset(np.arange(20))
    engine.manual_seed(123)
    loader = DataLoader(ds, batch_size=6, shuffle=True)
    epoch1, epoch2 = _order(loader), _order(loader)
    assert sorted(epoch1) == list(range(20)) and sorted(epoch2) == list(range(20))
    assert epoch1 != epoch2
    engine.manual_seed(123)
    loader2 = DataLoader(ds, batch_size=6, shuffle=True)
    assert [_order(loader2), _order(loader2)] == [epoch1, epoch2]
    engine.manual_seed(123)
    assert epoch1 == engine.default_generator().permutation(20).tolist()


def test_shuffle_order_drawn_when_epoch_starts():
    ds = TensorDataset(np.arange(8))
    loader = DataLoader(ds, batch_size=8, shuffle=True)
    engine.manual_seed(3)
    it = iter(loader)
    engine.manual_seed(99)        # reseeding after iter() must not change this epoch
    first = next(it)[0].tolist()
    engine.manual_seed(3)
    assert first == engine.default_generator().permutation(8).tolist()


def test_loader_private_seed():
    ds = TensorDataset(np.arange(15))
    a = DataLoader(ds, batch_size=4, shuffle=True, seed=7)
    b = DataLoader(ds, batch_size=4, shuffle=True, seed=7)
    ea = [_order(a) for _ in range(3)]
    engine.manual_seed(1000)      # the engine generator does not affect a seeded loader
    eb = [_order(b) for _ in range(3)]
    assert ea == eb
    assert ea[0] != ea[1]
    rng = np.random.default_rng(7)
    assert ea == [rng.permutation(15).tolist() for _ in range(3)]
    state = engine.default_generator().bit_generator.state
    _order(a)
    assert engine.default_generator().bit_generator.state == state


def test_fast_path_equals_per_sample_path():
    x = np.random.default_rng(0).standard_normal((23, 3)).astype(np.float32)
    y = np.arange(23)
    ds = TensorDataset(x, y)
    sub = Subset(ds, np.arange(22, 1, -1))
    for data in (ds, sub):
        fast = DataLoader(data, batch_size=5, shuffle=True, seed=4)
        slow = DataLoader(data, batch_size=5, shuffle=True, seed=4,
                          collate_fn=default_collate)
        assert fast._fetch is not None and slow._fetch is None
        for (fx, fy), (sx, sy) in zip(fast, slow, strict=True):
            np.testing.assert_array_equal(fx.numpy(), sx.numpy())
            np.testing.assert_array_equal(fy.numpy(), sy.numpy())
            assert fx.dtype == sx.dtype == np.float32 and fy.dtype == sy.dtype == np.int64


def test_loader_on_plain_dataset_with_dicts_and_device():
    loader = DataLoader(Squares(5), batch_size=2, device="cpu")
    assert loader._fetch is None
    batches = list(loader)
    x, d = batches[-1]
    assert x.device == "cpu" and d["sq"].device == "cpu"
    assert x.tolist() == [4.0] and d["sq"].tolist() == [[16]] and d["name"] == ["s4"]
    with pytest.raises(ValueError, match="unknown device"):
        DataLoader(Squares(5), device="tpu")


def test_custom_collate_fn():
    def collate(samples):
        xs = [s[0] for s in samples]
        return engine.tensor(np.array(xs, dtype=np.float32)).sum()

    out = list(DataLoader(Squares(6), batch_size=3, collate_fn=collate))
    assert [o.item() for o in out] == [3.0, 12.0]


def test_sampler():
    ds = TensorDataset(np.arange(10))
    loader = DataLoader(ds, batch_size=3, sampler=[9, 1, 4, 4, 0])
    assert [b[0].tolist() for b in loader] == [[9, 1, 4], [4, 0]]
    assert len(loader) == 2
    gen = DataLoader(ds, batch_size=2, drop_last=True, sampler=range(8, 3, -1))
    assert [b[0].tolist() for b in gen] == [[8, 7], [6, 5]]

    class Endless:
        def __iter__(self):
            return iter([2, 3])

    no_len = DataLoader(ds, batch_size=2, sampler=Endless())
    assert [b[0].tolist() for b in no_len] == [[2, 3]]
    with pytest.raises(TypeError, match="sampler that has len"):
        len(no_len)
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, shuffle=True, sampler=[0])


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_batch_size(bad):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DataLoader(TensorDataset(np.arange(3)), batch_size=bad)


@pytest.mark.gpu
def test_loader_moves_to_cuda():
    ds = TensorDataset(np.arange(6, dtype=np.float32), np.arange(6))
    xb, yb = next(iter(DataLoader(ds, batch_size=4, device="cuda")))
    assert xb.device == "cuda:0" and yb.device == "cuda:0"
    assert xb.numpy().tolist() == [0.0, 1.0, 2.0, 3.0]
