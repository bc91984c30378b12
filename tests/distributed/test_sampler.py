"""DistributedSampler: each epoch's shards cover the dataset exactly once."""

import pytest

from engine.distributed import DistributedSampler


@pytest.mark.parametrize("n", [0, 1, 7, 10, 16, 33])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_cover_each_sample_exactly_once(n, world, shuffle):
    for epoch in range(3):
        shards = []
        for rank in range(world):
            s = DistributedSampler(n, num_replicas=world, rank=rank, shuffle=shuffle, seed=5)
            s.set_epoch(epoch)
            shards.append(list(s))
            assert len(s) == len(shards[-1])
        flat = [i for shard in shards for i in shard]
        assert sorted(flat) == list(range(n))                 # exactly once
        assert max(map(len, shards)) - min(map(len, shards)) <= 1


@pytest.mark.parametrize("n", [7, 10, 33])
@pytest.mark.parametrize("world", [2, 3, 4])
def test_drop_last_gives_equal_shards_without_repeats(n, world):
    shards = [list(DistributedSampler(n, num_replicas=world, rank=r, drop_last=True))
              for r in range(world)]
    flat = [i for shard in shards for i in shard]
    assert len(set(flat)) == len(flat) == n // world * world
    assert {len(s) for s in shards} == {n // world}


def test_epochs_reshuffle_and_ranks_agree_on_the_permutation():
    a = DistributedSampler(20, num_replicas=2, rank=0, seed=1)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    a.set_epoch(0)
    assert list(a) == first


def test_rank_out_of_range_is_refused():
    with pytest.raises(ValueError, match="rank 2 is outside"):
        DistributedSampler(10, num_replicas=2, rank=2)
