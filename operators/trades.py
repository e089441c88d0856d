"""Trades: drop repeats (reconnect snapshots, replays) by trade id within a bounded window, then map to
rows. Pure logic; one instance per `exchange|symbol` key."""

from __future__ import annotations

from collections import deque
from typing import Any

from bytewax.operators import StatefulLogic

from cryptoflow import metrics
from cryptoflow.model import Kind, RawEvent, TradeRow


def trade_row(event: RawEvent) -> TradeRow:
    trade_id, price, qty, side = event.payload
    return TradeRow(
        event.exchange, event.market, event.symbol, event.exchange_symbol, event.exchange_ts_us,
        event.ingest_ts_us, trade_id, price, qty, side, event.shard, event.offset,
    )  # fmt: skip


class TradeDedupe:
    """Remembers the last `window` trade ids of one instrument."""

    def __init__(self, window: int = 10_000) -> None:
        self.window = window
        self.order: deque[str] = deque()
        self.seen: set[str] = set()
        self.duplicates = 0

    def first_time(self, trade_id: str) -> bool:
        if trade_id in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(trade_id)
        self.order.append(trade_id)
        if len(self.order) > self.window:
            self.seen.discard(self.order.popleft())
        return True


class TradeLogic(StatefulLogic[RawEvent, TradeRow, Any]):
    def __init__(self, window: int, resume: TradeDedupe | None = None) -> None:
        self.dedupe = resume if resume is not None else TradeDedupe(window)

    def on_item(self, value: RawEvent) -> tuple[list[TradeRow], bool]:
        if value.kind is not Kind.TRADE:
            return [], StatefulLogic.RETAIN
        if not self.dedupe.first_time(value.payload[0]):
            metrics.seq_event(value.exchange, "duplicate_trade").inc()
            return [], StatefulLogic.RETAIN
        return [trade_row(value)], StatefulLogic.RETAIN

    def snapshot(self) -> TradeDedupe:
        import copy

        return copy.deepcopy(self.dedupe)
