"""Depth events -> column-wise level rows (`LevelBatch`)."""

from __future__ import annotations

from cryptoflow.model import ASK, BID, LevelBatch, RawEvent


def levels_of(event: RawEvent, *, is_snapshot: bool, exchange_ts_us: int | None = None) -> LevelBatch:
    """Flatten `(bids, asks)` of a depth event into one batch; bids first, each side in message order."""
    bids, asks = event.payload
    nb, na = len(bids), len(asks)
    return LevelBatch(
        event.exchange, event.market, event.symbol, event.exchange_symbol,
        event.exchange_ts_us if exchange_ts_us is None else exchange_ts_us, event.ingest_ts_us,
        event.seq, event.first_seq, event.prev_seq, is_snapshot, event.shard, event.offset,
        [BID] * nb + [ASK] * na,
        [lvl[0] for lvl in bids] + [lvl[0] for lvl in asks],
        [lvl[1] for lvl in bids] + [lvl[1] for lvl in asks],
    )  # fmt: skip
