"""Depth-diff levels that stay in the compiled decoder's per-read buffers until someone asks for them.

`connectors.binance._depth.decode` writes a read's level texts into one `block` (a tuple of six bytes:
price texts + int32 offsets, qty texts + offsets, per-frame first level, per-frame bid count). Each
event's payload is a `BlockLevels` (block, frame index): the delta table gathers its rows straight from
the blocks in C (`gather`), so the hot path never builds a Python object per level. Every other
consumer (books, journal checks, tests, pickling for snapshots) reads it as the `(bids, asks)` tuple of
`[price, qty]` lists that the other parsers produce, built on first access.
"""

from __future__ import annotations

from typing import Any

try:  # the compiled decoder; without it no `BlockLevels` is ever made
    from connectors.binance._depth import gather
except ImportError:  # pragma: no cover - exercised only on installs without a C compiler
    gather = None

Block = tuple[bytes, bytes, bytes, bytes, bytes, bytes]


def materialise(block: Block, i: int) -> tuple[list[list[str]], list[list[str]]]:
    """Frame `i`'s levels as `(bids, asks)` lists of `[price, qty]` strings (the other parsers' shape)."""
    px_data, px_off, qty_data, qty_off, starts, nbids = block
    po, qo, st = memoryview(px_off).cast("i"), memoryview(qty_off).cast("i"), memoryview(starts).cast("i")
    first, end = st[i], st[i + 1]
    split = first + memoryview(nbids).cast("i")[i]
    levels = [
        [px_data[po[k] : po[k + 1]].decode("ascii"), qty_data[qo[k] : qo[k + 1]].decode("ascii")]
        for k in range(first, end)
    ]
    return levels[: split - first], levels[split - first :]


class BlockLevels:
    """`RawEvent.payload` of a depth diff from the compiled decoder: frame `i` of a read's level block.
    Behaves as the `(bids, asks)` tuple (unpacking, indexing, equality, repr); pickles as that tuple."""

    __slots__ = ("_levels", "block", "i")

    def __init__(self, block: Block, i: int) -> None:
        self.block, self.i, self._levels = block, i, None

    def levels(self) -> tuple[list[list[str]], list[list[str]]]:
        levels = self._levels
        if levels is None:
            levels = self._levels = materialise(self.block, self.i)
        return levels

    def __iter__(self):
        return iter(self.levels())

    def __len__(self) -> int:
        return 2

    def __getitem__(self, k: Any) -> Any:
        return self.levels()[k]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BlockLevels):
            other = other.levels()
        return self.levels() == other

    __hash__ = None  # type: ignore[assignment]  # like the tuple of lists it stands for

    def __repr__(self) -> str:
        return repr(self.levels())

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return tuple, (self.levels(),)
