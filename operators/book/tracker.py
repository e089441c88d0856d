"""Per-book state machine: sequence every event, keep the book, cross-check it, emit snapshot rows.

One `BookTracker` per `exchange|symbol`. It is pure (no I/O) and used by the dataflows (wrapped in a
Bytewax `StatefulLogic`) and by `cryptoflow verify`. What it guarantees:

* every event is judged by the venue's sequencing rule (`operators.sequencing.<venue>`); a break marks
  the book invalid, yields one `GapRow` and asks for a resync (`Step.resync`);
* no `BookRow` is ever emitted from an invalid book;
* every chance to cross-check is taken: exchange checksums (OKX, Kraken), Binance `bookTicker` against
  the local top of book at the same update id, and crossed-book detection (a crossed book is invalid);
* snapshots every `snapshot_interval_ms` and full checkpoints every `checkpoint_interval_ms` of event time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from cryptoflow.model import BookRow, GapRow, Kind, RawEvent
from operators.book.checksum_book import CHECKSUM, CROSSED, apply_update, load_snapshot
from operators.book.checksums import okx_checksum
from operators.book.levels import CSide, OrderBook, price_key
from operators.sequencing import bybit, okx
from operators.sequencing.binance import spot_verdict, usdm_verdict
from operators.sequencing.sync import DiffSync, Outcome
from operators.sequencing.verdict import Verdict

try:  # a row's levels, best prices, mid and spread in one call on compiled sides
    from operators.book._levels import row_levels as _c_row_levels
except ImportError:  # pragma: no cover - only without a C compiler (or a build older than this file)
    _c_row_levels = None
_ROW_SIDE = CSide if _c_row_levels is not None else None  # the side type `_c_row_levels` works on

# Enum members as module globals: `Kind.X` costs ~0.1 us per use on Python 3.11 (an attribute lookup on
# the enum class), and `on_event` + `_kraken` asked up to five times per Kraken event.
_DIFF, _SNAPSHOT, _TICKER, _CONNECTION_GAP = (
    Kind.DEPTH_DIFF,
    Kind.DEPTH_SNAPSHOT,
    Kind.BOOK_TICKER,
    Kind.CONNECTION_GAP,
)
_BOOK_KINDS = (_DIFF, _SNAPSHOT)

log = logging.getLogger(__name__)
_TABLE_QUANTUM = Decimal(1).scaleb(-18)
MAX_PENDING_TICKERS = 1000  # bookTickers waiting for the book to reach their update id

# Sequencing schemes (what the venue's stream looks like).
BINANCE_SPOT = "binance_spot"
BINANCE_USDM = "binance_usdm"
BYBIT = "bybit"
OKX = "okx"
COINBASE = "coinbase"
KRAKEN = "kraken"


@dataclass
class CheckCounts:
    match: int = 0
    mismatch: int = 0


@dataclass
class BookCounters:
    applied: int = 0  # depth messages applied to a valid book (snapshots not included)
    snapshots: int = 0
    stale: int = 0
    gaps: int = 0
    resyncs: int = 0  # snapshots adopted after a gap (the resync the gap asked for)
    crossed: int = 0
    book_ticker: CheckCounts = field(default_factory=CheckCounts)
    checksum: CheckCounts = field(default_factory=CheckCounts)
    rows: int = 0
    bad_events: int = 0  # malformed book messages (the book was invalidated)


@dataclass
class Step:
    """What one event did. `resync` asks the connector for a fresh snapshot of this book."""

    gaps: list[GapRow] = field(default_factory=list)
    rows: list[BookRow] = field(default_factory=list)
    resync: bool = False


@dataclass
class BookSettings:
    depth_cap: int = 2000
    snapshot_interval_ms: int = 100
    checkpoint_interval_ms: int = 1000
    snapshot_depth: int = 50
    max_buffered: int = 10_000
    stream: str = "book"
    emit: bool = True  # build BookRows (verify only counts)


class BookTracker:
    def __init__(self, scheme: str, settings: BookSettings | None = None) -> None:
        self.scheme = scheme
        self.settings = settings or BookSettings()
        self.book = OrderBook(self.settings.depth_cap)
        self.valid = False
        self.ever_valid = False
        self.gap_pending = False  # a gap asked for a resync that has not arrived yet
        self.book_id: int | None = None
        self.last_ts: int | None = None
        self.counters = BookCounters()
        self.checked = False  # a cross-check matched since the last (re)sync
        self.check_failed = False
        self.next_snapshot_ms: int | None = None
        self.next_checkpoint_ms: int | None = None
        self.pending_tickers: dict[int, RawEvent] = {}
        self.sync: DiffSync | None = None
        if scheme in (BINANCE_SPOT, BINANCE_USDM):
            verdict = spot_verdict if scheme == BINANCE_SPOT else usdm_verdict
            self.sync = DiffSync(verdict, self.settings.max_buffered)

    # ------------------------------------------------------------------------------------------ entry
    def on_event(self, ev: RawEvent) -> Step:
        step = Step()
        kind = ev.kind
        if kind is _TICKER:
            self._on_book_ticker(ev)
            return step
        if kind is _CONNECTION_GAP:
            if self.valid:
                self._gap(ev, step, "connection", seq_to=ev.seq)
            return step
        if kind not in _BOOK_KINDS:
            return step
        try:
            if self.sync is not None:
                self._binance(ev, step)
            elif self.scheme == KRAKEN:
                self._kraken(ev, step)
            elif kind is _SNAPSHOT:
                self._snapshot(ev, step)
            else:
                self._delta(ev, step)
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, ArithmeticError) as exc:
            # A malformed level (wrong shape, not a decimal string) may have been half applied: the book
            # can no longer be trusted, but the dataflow must go on.
            log.warning("%s: bad book event at offset %s (%r): book invalid", ev.key, ev.offset, exc)
            self.counters.bad_events += 1
            step.gaps.clear()
            step.rows.clear()
            self._gap(ev, step, "bad_event", seq_to=ev.seq)
        return step

    # ---------------------------------------------------------------------------------------- binance
    def _binance(self, ev: RawEvent, step: Step) -> None:
        assert self.sync is not None
        if ev.kind is Kind.DEPTH_SNAPSHOT:
            self.counters.snapshots += 1
            was_valid = self.valid
            result = self.sync.on_snapshot(ev, ev.seq)
        else:
            was_valid = self.valid
            result = self.sync.on_diff(ev, ev.first_seq, ev.seq, ev.prev_seq)
        self.counters.stale += result.stale
        if result.outcome in (Outcome.GAP, Outcome.SNAPSHOT_TOO_OLD):
            if was_valid or result.outcome is Outcome.SNAPSHOT_TOO_OLD:
                reason = "sequence" if result.outcome is Outcome.GAP else "snapshot_too_old"
                self._gap(ev, step, reason, seq_to=ev.seq if ev.kind is Kind.DEPTH_DIFF else None)
            step.resync = True
            return
        if result.snapshot is not None:
            snap = result.snapshot
            self._adopt(snap, snap.seq)
        for diff in result.diffs:
            bids, asks = diff.payload
            self.book.apply(bids, asks)
            self.book_id = diff.seq
            self.counters.applied += 1
            if diff.exchange_ts_us is not None:
                self.last_ts = diff.exchange_ts_us
            self._check_pending_ticker()
            if self._crossed(diff, step):
                return
            self._maybe_emit(diff, step)

    def _on_book_ticker(self, ev: RawEvent) -> None:
        """Compare now if the book is at the ticker's update id; otherwise keep the ticker until the book
        gets there. Tickers are kept while the book waits for its snapshot too: on a fast stream the
        snapshot arrives after many buffered diffs, and those replayed diffs still meet their tickers."""
        if ev.seq is None:
            return
        if self.valid and self.book_id is not None:
            if ev.seq == self.book_id:
                self._compare_ticker(ev)
                return
            if ev.seq < self.book_id:
                return  # the book has moved past it
        pending = self.pending_tickers
        if len(pending) >= MAX_PENDING_TICKERS:
            del pending[next(iter(pending))]  # oldest first
        pending[ev.seq] = ev

    def _check_pending_ticker(self) -> None:
        pending = self.pending_tickers
        if not pending:
            return
        book_id = self.book_id
        ticker = pending.pop(book_id, None)
        if ticker is not None:
            self._compare_ticker(ticker)
        if pending and next(iter(pending)) < book_id:
            for u in [u for u in pending if u < book_id]:
                del pending[u]  # the book never stopped at that id: nothing to compare

    def _compare_ticker(self, ticker: RawEvent) -> None:
        bid_px, bid_qty, ask_px, ask_qty = ticker.payload
        ok = _same(self.book.best_bid(), bid_px, bid_qty) and _same(self.book.best_ask(), ask_px, ask_qty)
        self._record_check(self.counters.book_ticker, ok)

    # ----------------------------------------------------------------------------------------- kraken
    def _kraken(self, ev: RawEvent, step: Step) -> None:
        """Kraken's rules (apply, truncate to the subscribed depth, checksum, crossed) are
        `operators.book.checksum_book`'s, the ones the client's checksum book uses to resubscribe; here
        they also count, write the gap row and emit rows. No sequence numbers: nothing is stale until the
        book was valid once (updates before the first snapshot are simply not ours yet)."""
        if ev.kind is _SNAPSHOT:
            self.counters.snapshots += 1
            broke = load_snapshot(self.book, ev)
            self._synced(ev.seq)
        elif self.valid:
            broke = apply_update(self.book, ev)
            if ev.seq is not None:
                self.book_id = ev.seq
            self.counters.applied += 1
        else:
            if self.ever_valid:
                self.counters.stale += 1  # waiting for the resync snapshot: nothing to apply to
            return
        if ev.exchange_ts_us is not None:
            self.last_ts = ev.exchange_ts_us
        if ev.checksum is not None:
            self._record_check(self.counters.checksum, broke != CHECKSUM)
        if broke is not None:
            if broke == CROSSED:
                self.counters.crossed += 1
            self._gap(ev, step, broke, seq_to=ev.seq)
            return
        self._maybe_emit(ev, step)

    # ------------------------------------------------------------------------ snapshot + delta venues
    def _snapshot(self, ev: RawEvent, step: Step) -> None:
        self.counters.snapshots += 1
        self._adopt(ev, ev.seq)
        if ev.exchange_ts_us is not None:
            self.last_ts = ev.exchange_ts_us
        if not self._verify_checksum(ev, step):
            return
        if self._crossed(ev, step):
            return
        self._maybe_emit(ev, step)

    def _delta(self, ev: RawEvent, step: Step) -> None:
        if not self.valid:
            self.counters.stale += 1  # waiting for the resync snapshot: nothing to apply to
            return
        verdict = self._verdict(ev)
        if verdict is Verdict.STALE:
            self.counters.stale += 1
            return
        if verdict is Verdict.GAP:
            self._gap(ev, step, "sequence", seq_to=ev.seq)
            return
        bids, asks = ev.payload
        self.book.apply(bids, asks)
        if ev.seq is not None:
            self.book_id = ev.seq
        if ev.exchange_ts_us is not None:
            self.last_ts = ev.exchange_ts_us
        self.counters.applied += 1
        if not self._verify_checksum(ev, step):
            return
        if self._crossed(ev, step):
            return
        self._maybe_emit(ev, step)

    def _verdict(self, ev: RawEvent) -> Verdict:
        if self.scheme == BYBIT:
            return bybit.delta_verdict(self.book_id, ev.seq)
        if self.scheme == OKX:
            return okx.update_verdict(self.book_id, ev.prev_seq, ev.seq) or Verdict.APPLY
        return Verdict.APPLY  # Coinbase: checked per connection by the parser

    def _verify_checksum(self, ev: RawEvent, step: Step) -> bool:
        if ev.checksum is None:
            return True
        if self.scheme == OKX:
            if not okx.checksum_applies(ev.checksum):
                return True
            actual = okx_checksum(self.book)
            ok = actual == ev.checksum
        else:
            return True
        self._record_check(self.counters.checksum, ok)
        if not ok:
            self._gap(ev, step, "checksum", seq_to=ev.seq)
        return ok

    # ------------------------------------------------------------------------------------- shared
    def _adopt(self, snap: RawEvent, seq: int | None) -> None:
        bids, asks = snap.payload
        self.book.load(bids, asks)
        self._synced(seq)

    def _synced(self, seq: int | None) -> None:
        """The book was just loaded from a snapshot at `seq`."""
        if self.gap_pending:
            self.counters.resyncs += 1
            self.gap_pending = False
        self.valid = self.ever_valid = True
        self.book_id = seq
        self.checked = self.check_failed = False
        self.next_snapshot_ms = self.next_checkpoint_ms = None

    def _gap(self, ev: RawEvent, step: Step, reason: str, seq_to: int | None) -> None:
        self.counters.gaps += 1
        step.gaps.append(
            GapRow(
                ev.exchange, ev.market, ev.symbol, ev.exchange_symbol, self.settings.stream,
                self.book_id, seq_to, self.last_ts, ev.exchange_ts_us, reason,
                ev.ingest_ts_us, ev.shard, ev.offset,
            )
        )  # fmt: skip
        step.resync = True
        self.gap_pending = True
        self._invalidate()

    def _invalidate(self) -> None:
        self.valid = False
        self.book.clear()
        if self.sync is not None and self.sync.live:
            self.sync.invalidate()

    def _record_check(self, counts: CheckCounts, ok: bool) -> None:
        if ok:
            counts.match += 1
            self.checked = True
        else:
            counts.mismatch += 1
            self.check_failed = True

    def _crossed(self, ev: RawEvent, step: Step) -> bool:
        if not self.book.crossed():
            return False
        self.counters.crossed += 1
        self._gap(ev, step, "crossed", seq_to=ev.seq)
        return True

    def _maybe_emit(self, ev: RawEvent, step: Step) -> None:
        ts = ev.exchange_ts_us
        if ts is None or not self.settings.emit:
            return
        ms = ts // 1000
        s = self.settings
        if self.next_snapshot_ms is not None and ms < self.next_snapshot_ms:
            return
        checkpoint = self.next_checkpoint_ms is None or ms >= self.next_checkpoint_ms
        self.next_snapshot_ms = (ms // s.snapshot_interval_ms + 1) * s.snapshot_interval_ms
        if checkpoint:
            self.next_checkpoint_ms = (ms // s.checkpoint_interval_ms + 1) * s.checkpoint_interval_ms
        step.rows.append(self.row(ev, checkpoint))
        self.counters.rows += 1

    def row(self, ev: RawEvent, checkpoint: bool) -> BookRow:
        """The current book as a row (only ever called on a valid book)."""
        depth = self.settings.depth_cap if checkpoint else self.settings.snapshot_depth
        book_bids, book_asks = self.book.bids, self.book.asks
        if type(book_bids) is _ROW_SIDE:  # mid/spread None also where only Decimal gives the exact text
            bids, asks, best_bid, best_ask, mid, spread = _c_row_levels(book_bids, book_asks, depth)
        else:
            bids, asks = book_bids.top(depth), book_asks.top(depth)
            best_bid = bids[0][0] if bids else None
            best_ask = asks[0][0] if asks else None
            mid = spread = None
        if mid is None and best_bid is not None and best_ask is not None:
            mid, spread = decimal_mid_spread(best_bid, best_ask)
        return BookRow(
            ev.exchange, ev.market, ev.symbol, ev.exchange_symbol, ev.exchange_ts_us, ev.ingest_ts_us,
            self.book_id, bids, asks, best_bid, best_ask, mid, spread,
            self.checked and not self.check_failed, checkpoint, ev.shard, ev.offset,
        )  # fmt: skip


def decimal_mid_spread(best_bid: str, best_ask: str) -> tuple[str, str]:
    """Mid and spread text through `Decimal` (the reference `_levels.mid_spread` reproduces)."""
    b, a = Decimal(best_bid), Decimal(best_ask)
    m = (b + a) / 2
    if m.as_tuple().exponent < -18:  # type: ignore[operator]
        m = m.quantize(_TABLE_QUANTUM)  # the tables hold decimal(38, 18)
    return str(m), str(a - b)


def _same(level: tuple[str, str] | None, price: str, qty: str) -> bool:
    if level is None:
        return False
    return price_key(level[0]) == price_key(price) and price_key(level[1]) == price_key(qty)
