"""Drop, duplicate and reorder frames of the real recordings and check the book engine's promises:

* every break is detected (one gap per dropped or reordered frame on venues with ids; on checksum-only
  venues whenever the damage reaches the checksummed top of book), and a duplicate is never a gap;
* no snapshot row is ever emitted from a wrong book: every `BookRow` equals the reference book (built
  from the unmodified recording with the standard library) at the frame that produced it;
* after the resync the connector would do (a fresh snapshot, here the reference book at that moment)
  the book is right again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest

from connectors.binance.parsing import BinanceParser, GuessingInstruments
from connectors.bybit.parsing import BybitParser
from connectors.coinbase.parsing import CoinbaseParser
from connectors.kraken.parsing import KrakenV1Parser
from connectors.okx.parsing import OkxParser
from cryptoflow.model import Kind, Market, RawEvent
from operators.book import tracker as tr
from operators.book.tracker import BookSettings, BookTracker
from tests.support import book_truth as truth


@dataclass
class Venue:
    name: str
    scheme: str
    stream: Callable[[], truth.ReferenceStream]
    parser: Callable[[], object]
    target: str  # exchange symbol of the book under test
    window: int | None  # levels a check can vouch for: None = whole book (id venues)
    has_ids: bool
    positions: int = 6  # how many frames to drop / duplicate / swap, spread over the recording


VENUES = [
    Venue("binance_spot", tr.BINANCE_SPOT, lambda: truth.binance_stream(truth.BINANCE_SPOT, "NKNUSDT", False),
          lambda: BinanceParser(GuessingInstruments(Market.SPOT)), "NKNUSDT", None, True),
    Venue("binance_usdm", tr.BINANCE_USDM, lambda: truth.binance_stream(truth.BINANCE_USDM, "SUSHIUSDT", True),
          lambda: BinanceParser(GuessingInstruments(Market.PERP)), "SUSHIUSDT", None, True),
    Venue("bybit", tr.BYBIT, lambda: truth.bybit_stream("spot", "ETHUSDT"),
          lambda: BybitParser(Market.SPOT), "ETHUSDT", None, True),
    Venue("coinbase", tr.COINBASE, lambda: truth.coinbase_stream("ETH-USD"),
          CoinbaseParser, "ETH-USD", None, True, 3),
    Venue("okx", tr.OKX, lambda: truth.okx_stream("UNI-USD-SWAP"), OkxParser, "UNI-USD-SWAP", 25, False),
    Venue("kraken_v1", tr.KRAKEN, lambda: truth.kraken_v1_stream("OCEAN/XBT"), KrakenV1Parser, "OCEAN/XBT", 10, False),
]  # fmt: skip
_STREAMS: dict[str, truth.ReferenceStream] = {}


def _stream(venue: Venue) -> truth.ReferenceStream:
    if venue.name not in _STREAMS:
        _STREAMS[venue.name] = venue.stream()
    return _STREAMS[venue.name]


def _text(d: Decimal) -> str:
    return format(d, "f")


def _resync_snapshot(
    ref: truth.NaiveBook, ident: int | None, template: RawEvent, depth: int | None
) -> RawEvent:
    bids = [[_text(p), _text(q)] for p, q in ref.top_bids()]
    asks = [[_text(p), _text(q)] for p, q in ref.top_asks()]
    return RawEvent(template.exchange, template.market, template.symbol, template.exchange_symbol,
                    Kind.DEPTH_SNAPSHOT, template.exchange_ts_us, template.ingest_ts_us, 0, template.offset,
                    (bids, asks), seq=ident, book_depth=depth)  # fmt: skip


def _levels(side: list[tuple[str, str]]) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(p), Decimal(q)) for p, q in side]


def _assert_matches(venue: Venue, bids, asks, ref: truth.NaiveBook, where: str) -> None:
    n_b = len(bids) if venue.window is None else min(len(bids), venue.window)
    n_a = len(asks) if venue.window is None else min(len(asks), venue.window)
    assert _levels(bids[:n_b]) == ref.top_bids(n_b), f"bids differ from the reference {where}"
    assert _levels(asks[:n_a]) == ref.top_asks(n_a), f"asks differ from the reference {where}"


@dataclass
class Outcome:
    tracker: BookTracker
    gaps: list
    rows: int


def replay(venue: Venue, order: list[int]) -> Outcome:
    """Feed the frames in `order` (indices into the original recording) through the venue's parser and
    one tracker for the target book; resync from the reference whenever the tracker asks for it."""
    stream = _stream(venue)
    parser = venue.parser()
    tracker = BookTracker(venue.scheme, BookSettings(snapshot_depth=50, stream="test"))
    gaps, rows, newest = [], 0, -1
    for index in order:
        kind, _, raw = stream.frames[index]
        newest = max(newest, index)
        if kind == "http":
            if f"symbol={venue.target}&" not in stream.frames[index][1]:
                continue
            events = [parser.parse_snapshot(raw, venue.target, 0)]
        else:
            events = parser.parse(raw, 0)
        for ev in events:
            if ev.exchange_symbol != venue.target:
                continue
            ev.offset = index
            step = tracker.on_event(ev)
            for row in step.rows:  # never from a wrong book
                ref, _ = stream.after(row.offset)
                _assert_matches(venue, row.bids, row.asks, ref, f"in a row emitted at frame {row.offset}")
                rows += 1
            gaps += step.gaps
            if step.resync:
                ref, ident = stream.after(newest)
                depth = ev.book_depth
                tracker.on_event(_resync_snapshot(ref, ident, ev, depth))
    return Outcome(tracker, gaps, rows)


def _final_check(venue: Venue, out: Outcome) -> None:
    stream = _stream(venue)
    assert out.tracker.valid, "the book must be valid again after the resync"
    ref, _ = stream.after(len(stream.frames))
    book = out.tracker.book
    _assert_matches(venue, book.bids.top(len(book.bids)), book.asks.top(len(book.asks)), ref, "at the end")
    assert out.tracker.counters.crossed == 0


def _positions(venue: Venue) -> list[int]:
    """Target frames spread over the recording, each followed by another target frame."""
    k = venue.positions
    targets = _stream(venue).target_frames()[:-1]
    step = max(1, len(targets) // k)
    return targets[::step][:k]


def _visible(venue: Venue, order: list[int]) -> bool:
    """Checksum venues: does the damage ever reach the checksummed window? Replays the target book's
    reference operations in `order` and compares, after each frame, the window with the one the
    exchange's checksum in that frame vouches for (the reference after that frame)."""
    stream = _stream(venue)
    ops = {i: op for i, *op in stream.ops}
    book = truth.NaiveBook(stream.depth)
    for index in order:
        if index not in ops:
            continue
        kind, bids, asks, _ = ops[index]
        (book.load if kind == "load" else book.apply)(bids, asks)
        ref, _ = stream.after(index)
        w = venue.window
        if (book.top_bids(w), book.top_asks(w)) != (ref.top_bids(w), ref.top_asks(w)):
            return True
    return False


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.name)
def test_unmodified_recording_is_clean(venue):
    out = replay(venue, list(range(len(_stream(venue).frames))))
    assert out.gaps == [] and out.rows > 0
    _final_check(venue, out)


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.name)
def test_dropped_frame_is_a_gap_and_book_recovers(venue):
    n = len(_stream(venue).frames)
    for k in _positions(venue):
        order = [i for i in range(n) if i != k]
        out = replay(venue, order)
        if venue.has_ids:
            assert len(out.gaps) == 1, f"drop of frame {k}: {len(out.gaps)} gaps"
            gap = out.gaps[0]
            assert gap.seq_to is not None and gap.reason in ("sequence", "connection", "snapshot_too_old")
        elif _visible(venue, order):
            assert len(out.gaps) >= 1 and out.gaps[0].reason == "checksum", f"drop of frame {k} undetected"
        assert out.tracker.counters.resyncs == len(out.gaps)
        _final_check(venue, out)


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.name)
def test_duplicated_frame_is_not_a_gap(venue):
    n = len(_stream(venue).frames)
    for k in _positions(venue):
        order = list(range(k + 1)) + list(range(k, n))
        out = replay(venue, order)
        assert out.gaps == [], f"duplicate of frame {k} reported as a gap"
        _final_check(venue, out)


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.name)
def test_reordered_frames_are_a_gap_and_book_recovers(venue):
    stream = _stream(venue)
    n = len(stream.frames)
    targets = stream.target_frames()
    for k in _positions(venue):
        nxt = targets[targets.index(k) + 1]
        order = list(range(n))
        order[k], order[nxt] = nxt, k  # the later update of this book arrives first
        out = replay(venue, order)
        if venue.has_ids:
            assert len(out.gaps) == 1, f"swap of frames {k},{nxt}: {len(out.gaps)} gaps"
        elif _visible(venue, order):
            assert len(out.gaps) >= 1, f"swap of frames {k},{nxt} undetected"
        _final_check(venue, out)
