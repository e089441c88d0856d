import pytest

from cryptoflow.sharding import (
    fnv1a_64,
    group_by_shard,
    mix64,
    owned_shards,
    owner_of,
    partition_name,
    rendezvous_weight,
    shard_id,
    shard_of_partition,
)


def test_fnv1a_golden_values():
    # Reference values of 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a_64(b"foobar") == 0x85944171F73967E8


def test_shard_ids_are_stable_golden_values():
    assert [shard_id("binance", s, 4) for s in ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR")] == [2, 0, 1, 1]
    assert shard_id("binance", "BTCUSDT", 1024) == fnv1a_64(b"binance|BTCUSDT") % 1024


def test_group_and_partition_names_sort_numerically():
    groups = group_by_shard("binance", ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"], 4)
    assert groups == {0: ["BLZETH"], 1: ["LRCBTC", "RUNEEUR"], 2: ["NKNUSDT"]}
    names = [partition_name(i) for i in (2, 10, 1)]
    assert sorted(names) == [partition_name(1), partition_name(2), partition_name(10)]
    assert shard_of_partition(partition_name(413)) == 413


def test_mix64_is_splitmix64():
    # splitmix64 with state 0: first output is mix64(0x9E3779B97F4A7C15) = 0xE220A8397B1DCDAF (reference)
    assert mix64(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF


def test_rendezvous_owner_golden_values():
    # Frozen: changing them reassigns shards of running deployments (and strands their recovery state).
    assert [owner_of(s, 3) for s in range(12)] == [1, 1, 0, 1, 1, 2, 0, 0, 0, 0, 2, 1]
    assert rendezvous_weight(0, 0) == 8478282443973588253
    assert rendezvous_weight(1, 1) == 14571579623420040401
    # recomputed from the definition, not from owner_of
    assert owner_of(5, 3) == max(range(3), key=lambda r: mix64(fnv1a_64(f"shard-5|replica-{r}".encode())))


def test_modulo_owner_is_the_original_rule():
    assert [owner_of(s, 3, "modulo") for s in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert owned_shards(range(10), 1, 4, "modulo") == [1, 5, 9]


def test_every_shard_has_exactly_one_owner_and_load_is_even():
    n, shards = 4, range(4096)
    parts = [owned_shards(shards, r, n) for r in range(n)]
    assert sorted(s for part in parts for s in part) == list(shards)
    for part in parts:  # each replica gets its 1/n share within 10%
        assert abs(len(part) - 4096 / n) < 0.1 * 4096 / n


def test_adding_a_replica_moves_only_its_share():
    shards = range(4096)
    for n in (1, 2, 4, 7):
        moved = [s for s in shards if owner_of(s, n) != owner_of(s, n + 1)]
        # only shards the new replica wins move, and they all move to it
        assert all(owner_of(s, n + 1) == n for s in moved)
        assert abs(len(moved) - 4096 / (n + 1)) < 0.15 * 4096 / (n + 1)
    # the modulo rule, by contrast, moves most shards going from 4 to 5 replicas
    assert sum(owner_of(s, 4, "modulo") != owner_of(s, 5, "modulo") for s in shards) > 0.7 * 4096


def test_owned_shards_rejects_bad_replica_index():
    with pytest.raises(ValueError):
        owned_shards(range(4), 2, 2)
