"""Bybit v5 and OKX v5 clients against the synthetic venues over real sockets: liquidations, funding,
trades and books are compared with the synthetic market's own record of what it emitted
(`market.truth`, `market.books`), including each exchange's liquidation side convention (Bybit `S` is
the position side; OKX `posSide`, or in net mode the closing order's `side`)."""

from __future__ import annotations

import queue
import time

import orjson
import pytest

from cryptoflow.model import Kind, RawEvent
from cryptoflow.simulator.server import ExchangeSimulator
from cryptoflow.simulator.synthetic.market import SyntheticMarket
from cryptoflow.simulator.synthetic_venues import BybitSyntheticVenue, OkxSyntheticVenue
from operators.book.tracker import BYBIT, OKX, BookSettings, BookTracker
from tests.support.subscribe_clients import ALL, bybit_clients, drain, okx_client, run_to_end

pytestmark = pytest.mark.integration
BYBIT_SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
OKX_IDS = ["BTC-USDT", "ETH-USDT-SWAP", "SOL-USDT-SWAP", "BTC-USD-260925"]


def _track(events: list[RawEvent], scheme: str) -> dict[tuple[str, str], BookTracker]:
    trackers: dict[tuple[str, str], BookTracker] = {}
    settings = BookSettings(emit=False, depth_cap=1_000_000)
    for ev in events:
        if ev.kind in (Kind.DEPTH_SNAPSHOT, Kind.DEPTH_DIFF):
            trackers.setdefault((ev.market, ev.exchange_symbol), BookTracker(scheme, settings)).on_event(ev)
    return trackers


def _ms(ts_us: int) -> int:
    return ts_us // 1000 * 1000  # the venues send milliseconds


# ------------------------------------------------------------------------------------------------ Bybit
def test_bybit_liquidations_funding_trades_and_books_equal_the_synthetic_truth():
    spot = SyntheticMarket(BYBIT_SYMBOLS, depth=25, seed=31)
    linear = SyntheticMarket(BYBIT_SYMBOLS, depth=25, seed=32)
    venue = BybitSyntheticVenue({"spot": spot, "linear": linear}, messages=1200, trade_every=6,
                                liquidation_every=7, funding_every=11)  # fmt: skip
    exchange = [s.replace("-", "") for s in BYBIT_SYMBOLS]
    with ExchangeSimulator(venue) as sim:
        q: queue.Queue = queue.Queue()
        clients = bybit_clients(sim, {"spot": exchange, "linear": exchange}, ALL, q)
        events = run_to_end(clients, q)
    perp = [e for e in events if e.market == "perp"]
    # liquidations: position side, bankruptcy price, size and time exactly as the market emitted them
    liqs = [(e.symbol, e.payload.side, e.payload.price, e.payload.qty, e.exchange_ts_us)
            for e in perp if e.kind is Kind.LIQUIDATION]  # fmt: skip
    want = [(x.symbol, x.position_side, x.price, x.qty, _ms(x.ts_us)) for x in linear.truth.liquidations]
    assert liqs == want and len(want) == len(range(0, 1200, 7))
    assert {side for _, side, *_ in liqs} == {"long", "short"}
    assert not [e for e in events if e.market == "spot" and e.kind in (Kind.LIQUIDATION, Kind.FUNDING)]
    # funding: rate, next funding time, mark and index price per tickers message
    funding = [(e.symbol, e.payload.funding_rate, e.payload.next_funding_ts_us, e.payload.mark_price,
                e.payload.index_price, e.exchange_ts_us) for e in perp if e.kind is Kind.FUNDING]  # fmt: skip
    assert funding == [
        (f.symbol, f.rate, f.next_funding_us // 1000 * 1000, f.mark_price, f.mark_price, _ms(f.ts_us))
        for f in linear.truth.funding
    ]
    assert {s for s, *_ in funding} == set(BYBIT_SYMBOLS)  # each symbol in turn, not only some
    # trades per category, taker side
    for market, truth in (("spot", spot), ("perp", linear)):
        trades = [e.payload for e in events if e.market == market and e.kind is Kind.TRADE]
        assert trades == [(str(t.trade_id), t.price, t.qty, t.taker_side) for t in truth.truth.trades]
    # books: one snapshot per topic, every delta continues `u`, final book = the true book
    trackers = _track(events, BYBIT)
    assert set(trackers) == {(m, s) for m in ("spot", "perp") for s in exchange}
    for (market, symbol), tracker in trackers.items():
        truth = (spot if market == "spot" else linear).books[symbol[:3] + "-" + symbol[3:]]
        assert tracker.counters.gaps == 0 and tracker.valid
        assert tracker.book.bids.top(1000) == truth.bids.top(1000)
        assert tracker.book.asks.top(1000) == truth.asks.top(1000)
    assert sum(c.resubscribes for c in clients) == 0
    assert venue.sub_stats.refused.total() == 0 and venue.connections == 2


# -------------------------------------------------------------------------------------------------- OKX
def _okx_run(venue: OkxSyntheticVenue, market: SyntheticMarket, late_start_after: int | None = None):
    """One client from the start; with `late_start_after`, a second one once that many changes went out."""
    with ExchangeSimulator(venue) as sim:
        q1: queue.Queue = queue.Queue()
        first = okx_client(sim, OKX_IDS, ALL, q1, symbols=OKX_IDS)
        first.start()
        clients, queues = [first], [q1]
        if late_start_after is not None:
            deadline = time.monotonic() + 30
            while (
                venue.feeds["/ws/v5/public"].changes_sent < late_start_after and time.monotonic() < deadline
            ):
                time.sleep(0.01)
            q2: queue.Queue = queue.Queue()
            second = okx_client(sim, OKX_IDS, {"depth"}, q2, symbols=OKX_IDS)
            second.start()
            clients.append(second)
            queues.append(q2)
        try:
            return [drain(q, 1) for q in queues], clients
        finally:
            for c in clients:
                c.stop()


def test_okx_liquidations_funding_and_checksummed_books_equal_the_synthetic_truth():
    market = SyntheticMarket(OKX_IDS, depth=25, seed=41)
    venue = OkxSyntheticVenue(market, messages=1500, trade_every=5, liquidation_every=6, funding_every=13,
                              net_mode_every=2)  # fmt: skip
    (events,), clients = _okx_run(venue, market)
    # liquidations (SWAP and FUTURES, subscribed per instType): position side, bkPx, sz, time; every other
    # one was sent in net mode, where the side comes from the closing order (sell -> long)
    liqs = [(e.exchange_symbol, e.payload.side, e.payload.price, e.payload.qty, e.exchange_ts_us)
            for e in events if e.kind is Kind.LIQUIDATION]  # fmt: skip
    want = [(x.symbol, x.position_side, x.price, x.qty, _ms(x.ts_us)) for x in market.truth.liquidations]
    assert liqs == want and len(want) == len(range(0, 1500, 6))
    assert {i for i, *_ in liqs} == {"ETH-USDT-SWAP", "SOL-USDT-SWAP", "BTC-USD-260925"}
    assert {(i, s) for i, s, *_ in liqs} >= {("BTC-USD-260925", "long"), ("ETH-USDT-SWAP", "short")}
    assert venue.encoder.liquidations == len(want)  # half of them in net mode (net_mode_every=2)
    # funding only for the SWAPs: rate and the settlement time it applies at
    funding = [(e.exchange_symbol, e.payload.funding_rate, e.payload.next_funding_ts_us, e.exchange_ts_us)
               for e in events if e.kind is Kind.FUNDING]  # fmt: skip
    assert funding == [
        (f.symbol, f.rate, f.next_funding_us // 1000 * 1000, _ms(f.ts_us)) for f in market.truth.funding
    ]
    assert {s for s, *_ in funding} == {"ETH-USDT-SWAP", "SOL-USDT-SWAP"}
    trades = [(e.exchange_symbol, *e.payload) for e in events if e.kind is Kind.TRADE]
    assert trades == [(t.symbol, str(t.trade_id), t.price, t.qty, t.taker_side) for t in market.truth.trades]
    # books: the seqId chain holds and every checksum matches the true book's
    trackers = _track(events, OKX)
    assert {s for _, s in trackers} == set(OKX_IDS)
    book_frames = sum(1 for e in events if e.kind in (Kind.DEPTH_SNAPSHOT, Kind.DEPTH_DIFF))
    assert sum(t.counters.checksum.match for t in trackers.values()) == book_frames > 1500
    for (_, inst), tracker in trackers.items():
        assert tracker.counters.checksum.mismatch == 0 and tracker.counters.gaps == 0
        assert tracker.book.bids.top(1000) == market.books[inst].bids.top(1000)
        assert tracker.book.asks.top(1000) == market.books[inst].asks.top(1000)
    assert clients[0].resubscribes == 0 and venue.sub_stats.refused.total() == 0


def test_okx_late_subscriber_gets_the_current_seq_id_and_nobody_s_chain_breaks():
    market = SyntheticMarket(OKX_IDS, depth=25, seed=43)
    # 5 s of feed, the late client starting after the first ~1 s: it needs its REST instruments, connect and
    # subscribe before the market ends, which on a loaded 2-core machine took more than the 0.7 s that a
    # 1 s feed had left
    venue = OkxSyntheticVenue(market, messages=3000, rate=600, trade_every=0, liquidation_every=0,
                              funding_every=0, real_checksum=False)  # fmt: skip
    (early, late), clients = _okx_run(venue, market, late_start_after=600)
    for events in (early, late):
        trackers = _track(events, OKX)
        assert len(trackers) == len(OKX_IDS)
        for (_, inst), tracker in trackers.items():
            assert tracker.counters.gaps == 0 and tracker.valid
            assert tracker.book.bids.top(1000) == market.books[inst].bids.top(1000)
            assert tracker.book.asks.top(1000) == market.books[inst].asks.top(1000)
        assert all(e.checksum == 0 for e in events if e.kind is Kind.DEPTH_DIFF)  # as OKX sends it in 2026
    first_snapshot = {e.exchange_symbol: e.seq for e in early if e.kind is Kind.DEPTH_SNAPSHOT}
    late_snapshot = {e.exchange_symbol: e.seq for e in late if e.kind is Kind.DEPTH_SNAPSHOT}
    assert all(late_snapshot[i] > first_snapshot[i] for i in OKX_IDS)  # cut mid-stream, at the current id
    last_early = {e.exchange_symbol: e.seq for e in early if e.kind is Kind.DEPTH_DIFF}
    last_late = {e.exchange_symbol: e.seq for e in late if e.kind is Kind.DEPTH_DIFF}
    assert last_early == last_late  # one exchange-wide chain
    assert sum(c.resubscribes for c in clients) == 0


def test_okx_liquidation_frames_state_the_side_in_both_position_modes():
    """The wire convention itself: `posSide` long/short, or `net` with the closing order's side."""
    market = SyntheticMarket(["BTC-USDT-SWAP"], depth=5, seed=1)
    venue = OkxSyntheticVenue(market, net_mode_every=2)
    seen = []
    for _ in range(40):
        liq = market.next_liquidation("BTC-USDT-SWAP")
        detail = orjson.loads(venue.encoder.liquidation(liq))["data"][0]["details"][0]
        seen.append((liq.position_side, detail["posSide"], detail["side"]))
    assert {pos for _, pos, _ in seen} == {"long", "short", "net"}
    for truth, pos, side in seen:
        assert pos in (truth, "net") and side == {"long": "sell", "short": "buy"}[truth]
