"""Stable symbol -> shard mapping.

Python's `hash()` is salted per process, so shards come from FNV-1a (64-bit) over `exchange|symbol`.
`total_shards` is fixed for a deployment: changing it moves symbols between shards and strands Bytewax
recovery state, so partition names carry the zero-padded shard number.
"""

from __future__ import annotations

from collections.abc import Iterable

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF


def fnv1a_64(data: bytes) -> int:
    h = _FNV64_OFFSET
    for byte in data:
        h ^= byte
        h = (h * _FNV64_PRIME) & _MASK64
    return h


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
