"""Journal records -> `RawEvent`s for Binance spot and USD-M: the parsing that happens after the journal.

Deterministic by construction: the instruments come from the journal's own INSTRUMENTS records (and
the source snapshot), so a replay after a crash decodes the same records into the same events. Frames
are parsed by the same function as the client's (`connectors.binance.parsing.parse_ws_frames`); the client
journals only frames it parsed and emitted, so a bad frame is counted once, by the client.
"""

from __future__ import annotations

import logging

from connectors.binance.client import SPOT, count_bad_frame, instruments_market
from connectors.binance.parsing import (
    EXCHANGE,
    Instrument,
    ParseError,
    parse_depth_snapshot,
    parse_exchange_info,
    parse_ws_frames,
)
from connectors.journal import JournalRecord, RecordKind
from cryptoflow import metrics
from cryptoflow.model import RawEvent

log = logging.getLogger(__name__)


class BinanceDecoder:
    """Decoder of one shard's journal. `symbols` (the shard's) bounds the instruments kept in the source
    snapshot: USD-M's exchangeInfo lists every contract."""

    def __init__(
        self,
        shard: int,
        state: dict[str, Instrument] | None = None,
        market: str = SPOT,
        symbols: list[str] | None = None,
    ) -> None:
        self.shard, self.market = shard, market
        self.symbols = set(symbols) if symbols is not None else None
        self.instruments: dict[str, Instrument] = dict(state or {})
        self._label = f"binance-{market}-shard-{shard} journal"

    def decode(self, record: JournalRecord) -> RawEvent | None:
        kind = record.kind
        if kind is RecordKind.WS_FRAME:  # the client's lean batch parser, on a batch of one record
            events, _ = parse_ws_frames([record.payload], self.instruments, self.shard, record.ingest_us,
                                        self._bad_frame)  # fmt: skip
            return events[0] if events else None
        try:
            if kind is RecordKind.REST_SNAPSHOT:
                inst = self.instruments.get(record.meta)
                if inst is None:
                    raise ParseError("unknown_symbol", record.meta)
                return parse_depth_snapshot(record.payload, inst, self.shard, record.ingest_us)
            if kind is RecordKind.INSTRUMENTS:
                listed = parse_exchange_info(record.payload, instruments_market(self.market))
                if self.symbols is not None:
                    listed = {s: inst for s, inst in listed.items() if s in self.symbols}
                self.instruments.update(listed)
        except ParseError as exc:
            metrics.BAD_FRAMES.labels(EXCHANGE, exc.reason).inc()
            if exc.reason == "unknown_symbol":
                metrics.UNKNOWN_SYMBOL.labels(EXCHANGE).inc()
            log.warning("%s: dropped record %d: %s", self._label, record.offset, exc)
        return None

    def _bad_frame(self, raw: bytes | str, exc: ParseError) -> None:
        count_bad_frame(exc, self._label)

    def state(self) -> dict[str, Instrument]:
        return dict(self.instruments)
