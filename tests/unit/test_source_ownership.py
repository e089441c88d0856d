from connectors.binance.source import binance_spot_shards
from cryptoflow.config import load_settings
from cryptoflow.sharding import owner_of, shard_id

SYMBOLS = [f"SYM{i}USDT" for i in range(60)]


def shards_for(replica: int, count: int, ownership: str = "rendezvous") -> dict[int, list[str]]:
    return binance_spot_shards(
        load_settings(
            environ={
                "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__SYMBOLS": "[" + ", ".join(SYMBOLS) + "]",
                "CRYPTOFLOW_SHARDING__TOTAL_SHARDS": "32",
                "CRYPTOFLOW_SHARDING__REPLICA_INDEX": str(replica),
                "CRYPTOFLOW_SHARDING__REPLICA_COUNT": str(count),
                "CRYPTOFLOW_SHARDING__OWNERSHIP": ownership,
            }
        )
    )


def test_replicas_list_disjoint_owned_shards_that_cover_every_symbol():
    for ownership in ("rendezvous", "modulo"):
        parts = [shards_for(r, 3, ownership) for r in range(3)]
        assert all(parts)
        shards = [s for part in parts for s in part]
        assert len(shards) == len(set(shards))
        symbols = sorted(sym for part in parts for syms in part.values() for sym in syms)
        assert symbols == sorted(SYMBOLS)
        for r, part in enumerate(parts):
            for shard, syms in part.items():
                assert owner_of(shard, 3, ownership) == r
                assert all(shard_id("binance", s, 32) == shard for s in syms)


def test_one_replica_owns_everything():
    assert sorted(s for syms in shards_for(0, 1).values() for s in syms) == sorted(SYMBOLS)
