from cryptoflow.sharding import fnv1a_64, group_by_shard, partition_name, shard_id, shard_of_partition


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
