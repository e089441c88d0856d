"""Depth-diff levels that stay in the compiled decoder's per-read buffers until someone asks for them.

A compiled read decoder (`connectors.binance._depth.decode`) writes a read's level texts into one
`block` (a tuple of six bytes: price texts + int32 offsets, qty texts + offsets, per-frame first level,
per-frame bid count); `cryptoflow/_level_block.c` reads blocks back (core code, no connector import). Each
event's payload is a `BlockLevels` (block, frame index): the delta table gathers its rows straight from
the blocks in C (`gather`), so the hot path never builds a Python object per level. Every other
consumer (books, journal checks, tests, pickling for snapshots) reads it as the `(bids, asks)` tuple of
`[price, qty]` lists that the other parsers produce, built on first access.
"""

from __future__ import annotations

from array import array
from typing import Any

from cryptoflow.model import Kind, RawEvent

try:  # the compiled block reader (cryptoflow/_level_block.c); without a C compiler no block is ever made
    from cryptoflow._level_block import book_levels, decimal_column, decimals, gather, gather_groups
except ImportError:  # pragma: no cover - exercised only on installs without a C compiler
    book_levels = decimal_column = decimals = gather = gather_groups = None

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


class DepthGroup:
    """One symbol's depth diffs of one socket read, as columns: the item the columnar read path carries
    from the decoder to the delta table instead of one `RawEvent` per frame.

    `pos` (int32 bytes) are the frames' positions in the read, which are also their frame indices in
    `block` and, added to the read's first offset (`base`, set when the source partition places the
    read), their offsets. `E_us`, `U`, `u` (int64 bytes) and `pu` (int64 bytes, None when the frames
    carry none) are per-frame columns. `first_U`, `first_u`, `first_pu` are the first frame's ids, `seq`
    the last frame's `u` and `exchange_ts_us` its event time. `spot_chain` / `usdm_chain`: every frame
    after the first continues the one before under that venue's rule (computed by the decoder), so a book
    that takes the first frame takes them all. `kind` is not `Kind.DEPTH_DIFF` on purpose: per-event
    rules (`apply_live_run`) stop at a group instead of reading it as one diff."""

    __slots__ = (
        "E_us",
        "U",
        "base",
        "block",
        "exchange",
        "exchange_symbol",
        "exchange_ts_us",
        "first_U",
        "first_pu",
        "first_u",
        "ingest_ts_us",
        "last_pos",
        "market",
        "n",
        "pos",
        "pu",
        "seq",
        "shard",
        "spot_chain",
        "symbol",
        "u",
        "usdm_chain",
    )  # fmt: skip
    kind = "depth_group"

    def __init__(
        self, exchange: str, market: str, symbol: str, exchange_symbol: str, shard: int, ingest_ts_us: int,
        block: Block, columns: tuple,
    ) -> None:  # fmt: skip
        self.exchange, self.market, self.symbol = exchange, market, symbol
        self.exchange_symbol, self.shard = exchange_symbol, shard
        self.ingest_ts_us, self.block = ingest_ts_us, block
        (_, self.pos, self.E_us, self.U, self.u, self.pu, self.first_pu, self.first_U, self.first_u,
         self.seq, self.exchange_ts_us, self.spot_chain, self.usdm_chain) = columns  # fmt: skip
        self.n = len(self.pos) // 4
        self.last_pos = memoryview(self.pos).cast("i")[-1]
        self.base = -1

    @property
    def offset(self) -> int:
        """The last frame's offset: the group's triggering position (its rows commit together)."""
        return self.base + self.last_pos

    def offsets(self) -> list[int]:
        base = self.base
        return [base + p for p in memoryview(self.pos).cast("i")]

    def events(self) -> list[RawEvent]:
        """The group as the per-frame path's events (the reference path: gaps, snapshots, tests)."""
        pos = memoryview(self.pos).cast("i")
        E, U, u = array("q", self.E_us), array("q", self.U), array("q", self.u)
        pu = array("q", self.pu) if self.pu is not None else [None] * self.n
        block, base, diff = self.block, self.base, Kind.DEPTH_DIFF
        args = (self.exchange, self.market, self.symbol, self.exchange_symbol, diff)
        return [
            RawEvent(*args, E[k], self.ingest_ts_us, self.shard, base + p, BlockLevels(block, p), U[k], u[k], pu[k])
            for k, p in enumerate(pos)
        ]  # fmt: skip

    def __repr__(self) -> str:
        return f"DepthGroup({self.exchange_symbol}, {self.n} frames, offset {self.offset})"


class DepthRead:
    """One socket read of depth diffs as per-symbol `DepthGroup`s: one hand-over item for `span` frames.
    The source partition gives it `span` consecutive offsets (`place`)."""

    __slots__ = ("groups", "span")

    def __init__(self, groups: list[DepthGroup], span: int) -> None:
        self.groups, self.span = groups, span

    def place(self, base: int) -> None:
        for group in self.groups:
            group.base = base
