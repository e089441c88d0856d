"""`cryptoflow verify`: replay recordings through the parsers, sequencers and book engine and report,
per book, what was applied and what every cross-check said.

Recordings: cryptofeed v1 text (`*.ws.N.0`, `*.http.0.0`), cryptofeed v3 JSON lines, CryptoFlow's own
capture format (`connectors.recordings.capture`), or a file of bare Kraken v2 book frames. All records of
all files are merged in receive-clock order (a Binance REST snapshot recorded in its own file lands
between the WebSocket frames it was fetched among), then each connection's frames go through the parser
for its URL. Books are reported as `EXCHANGE:exchange-symbol`; Bybit derivatives get a `-PERP` suffix
because Bybit uses the same symbol for spot and linear books.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from connectors.binance.parsing import BinanceParser, GuessingInstruments
from connectors.bybit.parsing import BybitParser, market_of_url
from connectors.coinbase.parsing import CoinbaseParser
from connectors.kraken.parsing import KrakenV1Parser, KrakenV2Parser
from connectors.okx.parsing import OkxParser
from connectors.parse_errors import ParseError
from connectors.recordings.capture import is_capture, read_capture
from connectors.recordings.cryptofeed_v1 import read_cryptofeed_v1
from connectors.recordings.cryptofeed_v3 import read_cryptofeed_v3
from connectors.recordings.journal_capture import is_journal_capture, read_journal_capture
from connectors.recordings.records import Record, RecordingFormatError
from cryptoflow.model import Market, RawEvent
from operators.book import tracker as tr
from operators.book.tracker import BookSettings, BookTracker

log = logging.getLogger(__name__)


class Parser(Protocol):
    def parse(self, raw: bytes | str, ingest_us: int) -> list[RawEvent]: ...


@dataclass(frozen=True)
class Venue:
    label: str  # BINANCE, BINANCE_FUTURES, BYBIT, OKX, COINBASE, KRAKEN
    scheme: str  # operators.book.tracker sequencing scheme


BINANCE = Venue("BINANCE", tr.BINANCE_SPOT)
BINANCE_FUTURES = Venue("BINANCE_FUTURES", tr.BINANCE_USDM)
BYBIT = Venue("BYBIT", tr.BYBIT)
OKX = Venue("OKX", tr.OKX)
COINBASE = Venue("COINBASE", tr.COINBASE)
KRAKEN = Venue("KRAKEN", tr.KRAKEN)


def venue_of_url(url: str) -> Venue | None:
    u = url.lower()
    if "fstream.binance" in u or "fapi.binance" in u or "/fapi/" in u:
        return BINANCE_FUTURES
    if "binance" in u:
        return BINANCE
    if "bybit" in u:
        return BYBIT
    if "okx.com" in u:
        return OKX
    if "coinbase" in u:
        return COINBASE
    if "kraken" in u:
        return KRAKEN
    return None


def _parser_for(url: str, venue: Venue) -> Parser:
    if venue is BINANCE:
        return BinanceParser(GuessingInstruments(Market.SPOT))
    if venue is BINANCE_FUTURES:
        return BinanceParser(GuessingInstruments(Market.PERP))
    if venue is BYBIT:
        return BybitParser(market_of_url(url))
    if venue is OKX:
        return OkxParser()
    if venue is COINBASE:
        return CoinbaseParser()
    return KrakenV2Parser() if url.rstrip("/").endswith("/v2") else KrakenV1Parser()


# ------------------------------------------------------------------------------------------ reading
@dataclass(frozen=True, order=True)
class _Item:
    ts: float
    file_index: int
    line: int
    record: Record = field(compare=False)


def _detect(path: Path) -> str:
    if is_journal_capture(path):
        return "journal"
    if path.is_dir():
        raise RecordingFormatError(f"{path}: a directory with no `cryptoflow capture` journals (*.seg)")
    with path.open("rb") as handle:
        first = handle.readline()
    if is_capture(first):
        return "capture"
    try:
        obj = orjson.loads(first)
    except orjson.JSONDecodeError:
        return "v1"
    if isinstance(obj, dict) and obj.get("t") == "header":
        return "v3"
    if isinstance(obj, dict) and obj.get("channel") == "book":
        return "kraken_v2_frames"
    raise RecordingFormatError(f"{path}: not a recording format cryptoflow knows")


def _records(path: Path, file_index: int) -> Iterator[_Item]:
    kind = _detect(path)
    conn = f"{path}"
    if kind == "kraken_v2_frames":
        yield _Item(0.0, file_index, 0, Record("connect", 0.0, "", url="wss://ws.kraken.com/v2", conn=conn))
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                yield _Item(0.0, file_index, n, Record("recv", 0.0, line, conn=conn))
        return
    reader = {
        "capture": read_capture, "v3": read_cryptofeed_v3, "v1": read_cryptofeed_v1, "journal": read_journal_capture,
    }[kind]  # fmt: skip
    for n, r in enumerate(reader(path)):
        if r.conn is None:  # v1: one connection per file
            r = Record(r.kind, r.ts, r.data, url=r.url, conn=conn if r.kind != "http" else f"{conn}#http")
        yield _Item(r.ts, file_index, n, r)


def merged_records(paths: list[Path]) -> Iterator[Record]:
    """All records of all files in receive-clock order (file order breaks ties; each file stays ordered)."""
    # heapq.merge keeps each file's own order even where its clock steps backwards.
    for item in heapq.merge(*(_records(p, i) for i, p in enumerate(paths))):
        yield item.record


# ------------------------------------------------------------------------------------------- replay
@dataclass
class Replay:
    trackers: dict[str, BookTracker] = field(default_factory=dict)
    parse_errors: Counter = field(default_factory=Counter)
    events: int = 0

    def report(self) -> dict[str, Any]:
        symbols = {}
        for label in sorted(self.trackers):
            c = self.trackers[label].counters
            symbols[label] = {
                "applied": c.applied,
                "gaps": c.gaps,
                "resyncs": c.resyncs,
                "crossed": c.crossed,
                "checks": {
                    "book_ticker": {"match": c.book_ticker.match, "mismatch": c.book_ticker.mismatch},
                    "checksum": {"match": c.checksum.match, "mismatch": c.checksum.mismatch},
                },
                "snapshots": c.snapshots,
                "stale": c.stale,
                "synced": self.trackers[label].ever_valid,
            }
        return {"symbols": symbols, "parse_errors": dict(self.parse_errors)}


def label_of(venue: Venue, ev: RawEvent) -> str:
    suffix = "-PERP" if venue is BYBIT and ev.market != Market.SPOT else ""
    return f"{venue.label}:{ev.exchange_symbol}{suffix}"


def replay(records: Iterator[Record], settings: BookSettings | None = None) -> Replay:
    settings = settings or BookSettings(emit=False)
    out = Replay()
    conns: dict[str, tuple[Venue, Parser]] = {}
    binance_http: dict[Venue, BinanceParser] = {}
    offset = 0
    for r in records:
        conn = r.conn or ""
        ingest_us = round(r.ts * 1e6)
        if r.kind == "connect":
            venue = venue_of_url(r.url or "")
            if venue is not None:
                conns[conn] = (venue, _parser_for(r.url or "", venue))
            continue
        events: list[RawEvent]
        if r.kind == "http":
            venue = venue_of_url(r.url or "")
            if venue not in (BINANCE, BINANCE_FUTURES) or "depth" not in (r.url or ""):
                continue
            parser = binance_http.setdefault(
                venue, BinanceParser(GuessingInstruments(Market.SPOT if venue is BINANCE else Market.PERP))
            )
            symbol = (r.url or "").split("symbol=")[1].split("&")[0].upper()
            try:
                events = [parser.parse_snapshot(r.data, symbol, ingest_us)]
            except ParseError as exc:
                out.parse_errors[exc.reason] += 1
                continue
        elif r.kind == "recv" and conn in conns:
            venue, parser = conns[conn]
            try:
                events = parser.parse(r.data, ingest_us)
            except ParseError as exc:
                out.parse_errors[exc.reason] += 1
                log.debug("%s: %s", conn, exc)
                continue
        else:
            continue
        for ev in events:
            ev.offset = offset
            offset += 1
            label = label_of(venue, ev)
            tracker = out.trackers.get(label)
            if tracker is None:
                tracker = out.trackers[label] = BookTracker(venue.scheme, settings)
            tracker.on_event(ev)
            out.events += 1
    # Books that only ever saw trades/tickers are not books.
    out.trackers = {k: t for k, t in out.trackers.items() if t.counters.snapshots or t.counters.applied}
    return out


def verify_paths(paths: list[Path], settings: BookSettings | None = None) -> Replay:
    return replay(merged_records(paths), settings)


def ok(report: dict[str, Any]) -> bool:
    """True when every book synced and no gap, crossed book or failed check was seen."""
    for stats in report["symbols"].values():
        checks = stats["checks"]
        if (
            not stats["synced"]
            or stats["gaps"]
            or stats["crossed"]
            or checks["book_ticker"]["mismatch"]
            or checks["checksum"]["mismatch"]
        ):
            return False
    return True


def format_text(report: dict[str, Any]) -> str:
    lines = [
        f"{'book':<36} {'applied':>8} {'gaps':>5} {'resync':>6} {'crossed':>7} {'ticker ok/bad':>14} {'checksum ok/bad':>16}"
    ]
    for label, s in report["symbols"].items():
        t, c = s["checks"]["book_ticker"], s["checks"]["checksum"]
        sync = "" if s["synced"] else "  (never synced)"
        lines.append(
            f"{label:<36} {s['applied']:>8} {s['gaps']:>5} {s['resyncs']:>6} {s['crossed']:>7} "
            f"{t['match']:>7}/{t['mismatch']:<6} {c['match']:>8}/{c['mismatch']:<7}{sync}"
        )
    if report["parse_errors"]:
        lines.append(
            "unparsed frames: " + ", ".join(f"{k} {v}" for k, v in sorted(report["parse_errors"].items()))
        )
    lines.append("OK" if ok(report) else "NOT OK: see gaps / crossed / mismatches above")
    return "\n".join(lines)
