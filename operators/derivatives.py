"""Liquidations and funding: RawEvents -> rows, repeats dropped. Pure logic, one instance per key.

Repeats happen when two connections overlap (Binance 24 h rotation, reconnects replaying the latest
mark price): an event is a repeat when its `seq` (Binance: the event time `E`, unique per symbol and
stream) is not newer than the last one emitted for the key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bytewax.operators import StatefulLogic

from cryptoflow import metrics
from cryptoflow.model import Funding, FundingRow, Kind, Liquidation, LiquidationRow, RawEvent


def liquidation_row(ev: RawEvent) -> LiquidationRow:
    liq: Liquidation = ev.payload
    return LiquidationRow(
        ev.exchange, ev.market, ev.symbol, ev.exchange_symbol, ev.exchange_ts_us, ev.ingest_ts_us,
        liq.side, liq.price, liq.qty, liq.avg_price, liq.filled_qty, liq.status, ev.shard, ev.offset,
    )  # fmt: skip


def funding_row(ev: RawEvent) -> FundingRow:
    f: Funding = ev.payload
    return FundingRow(
        ev.exchange, ev.market, ev.symbol, ev.exchange_symbol, ev.exchange_ts_us, ev.ingest_ts_us,
        f.funding_rate, f.next_funding_ts_us, f.mark_price, f.index_price, f.estimated_settle_price,
        ev.shard, ev.offset,
    )  # fmt: skip


class EventRowLogic(StatefulLogic[RawEvent, Any, Any]):
    """Maps events of one `kind` to rows; drops events whose `seq` is not newer than the last one."""

    def __init__(self, kind: Kind, to_row: Callable[[RawEvent], Any], resume: int | None = None) -> None:
        self.kind, self.to_row = kind, to_row
        self.last_seq = resume

    def on_item(self, value: RawEvent) -> tuple[list[Any], bool]:
        if value.kind is not self.kind:
            return [], StatefulLogic.RETAIN
        if value.seq is not None:
            if self.last_seq is not None and value.seq <= self.last_seq:
                metrics.seq_event(value.exchange, f"duplicate_{self.kind.name.lower()}").inc()
                return [], StatefulLogic.RETAIN
            self.last_seq = value.seq
        return [self.to_row(value)], StatefulLogic.RETAIN

    def snapshot(self) -> int | None:
        return self.last_seq


def liquidation_logic(resume: int | None) -> EventRowLogic:
    return EventRowLogic(Kind.LIQUIDATION, liquidation_row, resume)


def funding_logic(resume: int | None) -> EventRowLogic:
    return EventRowLogic(Kind.FUNDING, funding_row, resume)
