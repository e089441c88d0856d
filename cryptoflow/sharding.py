"""Stable symbol -> shard mapping, and shard -> replica ownership.

Python's `hash()` is salted per process, so shards come from FNV-1a (64-bit) over `exchange|symbol`.
`total_shards` is fixed for a deployment: changing it moves symbols between shards and strands Bytewax
recovery state, so partition names carry the zero-padded shard number.

Independent replicas split the shards between them. `modulo` (shard % replica_count) is the original
rule but moves almost every shard when a replica is added; `rendezvous` (highest random weight, the
default) moves only the shards the new replica wins, about 1/(n+1) of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF

Ownership = Literal["rendezvous", "modulo"]


def fnv1a_64(data: bytes) -> int:
    h = _FNV64_OFFSET
    for byte in data:
        h ^= byte
        h = (h * _FNV64_PRIME) & _MASK64
    return h


def mix64(x: int) -> int:
    """splitmix64 finaliser: FNV-1a of near-identical keys differs only in low bits; this spreads them."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK64
    return x ^ (x >> 31)


def shard_id(exchange: str, symbol: str, total_shards: int) -> int:
    if total_shards < 1:
        raise ValueError("total_shards must be at least 1")
    return fnv1a_64(f"{exchange}|{symbol}".encode()) % total_shards


def partition_name(shard: int) -> str:
    return f"shard-{shard:05d}"


def shard_of_partition(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def group_by_shard(exchange: str, symbols: Iterable[str], total_shards: int) -> dict[int, list[str]]:
    """Shard -> its symbols, in config order; only shards that own at least one symbol appear."""
    groups: dict[int, list[str]] = {}
    for symbol in symbols:
        groups.setdefault(shard_id(exchange, symbol, total_shards), []).append(symbol)
    return dict(sorted(groups.items()))


def rendezvous_weight(shard: int, replica: int) -> int:
    return mix64(fnv1a_64(f"shard-{shard}|replica-{replica}".encode()))


def owner_of(shard: int, replica_count: int, ownership: Ownership = "rendezvous") -> int:
    """The replica index that collects `shard`."""
    if replica_count < 1:
        raise ValueError("replica_count must be at least 1")
    if ownership == "modulo":
        return shard % replica_count
    if ownership == "rendezvous":
        # ties are impossible in practice (64-bit weights); the lower index wins if one ever happens
        return max(range(replica_count), key=lambda r: (rendezvous_weight(shard, r), -r))
    raise ValueError(f"unknown ownership rule {ownership!r}")


def owned_shards(
    shards: Iterable[int], replica_index: int, replica_count: int, ownership: Ownership = "rendezvous"
) -> list[int]:
    """The subset of `shards` that replica `replica_index` of `replica_count` collects, sorted."""
    if not 0 <= replica_index < replica_count:
        raise ValueError(f"replica_index {replica_index} must be in [0, {replica_count})")
    return sorted(s for s in shards if owner_of(s, replica_count, ownership) == replica_index)
