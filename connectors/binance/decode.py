"""Journal records -> `RawEvent`s for Binance spot: the parsing that happens after the journal.

Deterministic by construction: the instruments come from the journal's own INSTRUMENTS records (and
the source snapshot), so a replay after a crash decodes the same records into the same events.
"""

from __future__ import annotations

import logging

from connectors.binance.parsing import (
    EXCHANGE,
    Instrument,
    ParseError,
    parse_depth_snapshot,
    parse_exchange_info,
    parse_ws_frame,
)
from connectors.journal import JournalRecord, RecordKind
from cryptoflow import metrics
from cryptoflow.model import Market, RawEvent

log = logging.getLogger(__name__)


class BinanceSpotDecoder:
    def __init__(self, shard: int, state: dict[str, Instrument] | None = None) -> None:
        self.shard = shard
        self.instruments: dict[str, Instrument] = dict(state or {})

    def decode(self, record: JournalRecord) -> RawEvent | None:
        try:
            if record.kind is RecordKind.WS_FRAME:
                return parse_ws_frame(record.payload, self.instruments, self.shard, record.ingest_us)
            if record.kind is RecordKind.REST_SNAPSHOT:
                inst = self.instruments.get(record.meta)
                if inst is None:
                    raise ParseError("unknown_symbol", record.meta)
                return parse_depth_snapshot(record.payload, inst, self.shard, record.ingest_us)
            if record.kind is RecordKind.INSTRUMENTS:
                self.instruments.update(parse_exchange_info(record.payload, Market.SPOT))
        except ParseError as exc:
            metrics.BAD_FRAMES.labels(EXCHANGE, exc.reason).inc()
            if exc.reason == "unknown_symbol":
                metrics.UNKNOWN_SYMBOL.labels(EXCHANGE).inc()
            log.warning("binance spot shard %s: dropped record %d: %s", self.shard, record.offset, exc)
        return None

    def state(self) -> dict[str, Instrument]:
        return dict(self.instruments)
