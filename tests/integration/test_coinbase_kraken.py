"""Coinbase and Kraken v2 connectors against the simulator over real sockets.

Coinbase: the recording replayed; trades and books are compared with the recording read by the
standard library (`tests/support/coinbase_truth.py`). Kraken v2: the synthetic market; books are
compared with the market's true book, and every checksum must match. Both also lose a frame on purpose
and must notice it (Coinbase `sequence_num`, Kraken checksum), resubscribe and end with the true book.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from decimal import Decimal

import orjson
import pytest
import websockets

from connectors import ws_client
from connectors.coinbase.client import CoinbaseClient
from connectors.kraken.client import KrakenClient
from connectors.retry import Backoff
from connectors.signals import END
from cryptoflow import metrics
from cryptoflow.config import CoinbaseConfig, ConnectorConfig, KrakenConfig
from cryptoflow.model import Kind, RawEvent
from cryptoflow.simulator.coinbase import CoinbaseVenue
from cryptoflow.simulator.kraken import KrakenV2SyntheticVenue
from cryptoflow.simulator.server import ExchangeSimulator
from cryptoflow.simulator.synthetic.market import SyntheticMarket
from operators.book.tracker import COINBASE, KRAKEN, BookSettings, BookTracker
from operators.trades import TradeDedupe
from tests.support import coinbase_truth

pytestmark = pytest.mark.integration
PRODUCTS = ["BTC-USD", "ETH-USD"]
KRAKEN_SYMBOLS = ["BTC-USD", "ETH-USD", "ALGO-USD"]


def drain(q: queue.Queue) -> list[RawEvent]:
    out = []
    while True:
        item = q.get(timeout=5)
        if item is END:
            return out
        out.append(item)


def run_client(client, q: queue.Queue) -> list[RawEvent]:
    client.start()
    events = drain(q)
    assert client.finished.wait(30)
    return events


def track(events: list[RawEvent], scheme: str) -> dict[str, BookTracker]:
    trackers: dict[str, BookTracker] = {}
    settings = BookSettings(emit=False, depth_cap=1_000_000)
    for ev in events:
        if ev.kind is not Kind.TRADE:
            trackers.setdefault(ev.symbol, BookTracker(scheme, settings)).on_event(ev)
    return trackers


def decimals(levels) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(p), Decimal(q)) for p, q in levels]


@pytest.fixture(scope="module")
def coinbase_frames():
    return CoinbaseVenue.from_recording().frames


def coinbase_run(frames, drop: set[int] | None = None):
    venue = CoinbaseVenue(frames, _products_body(), drop=drop)
    with ExchangeSimulator(venue) as sim:
        cfg = CoinbaseConfig(ws_url=sim.ws_url, rest_url=sim.http_url, symbols=PRODUCTS)
        q: queue.Queue = queue.Queue()
        client = CoinbaseClient(cfg, ConnectorConfig(stop_at_replay_end=True), PRODUCTS,
                                {"level2", "market_trades"}, 0, q)  # fmt: skip
        events = run_client(client, q)
    return venue, client, events


def _products_body() -> bytes:
    import json

    with coinbase_truth.COINBASE.open() as handle:
        for line in handle:
            record = json.loads(line)
            if record["t"] == "http":
                return record["data"].encode()
    raise AssertionError("the recording has no products response")


def final_truth_books() -> dict[str, tuple[list, list]]:
    stamps = coinbase_truth.l2_stamps()
    last = {product: stamp for product, stamp in stamps}
    books = coinbase_truth.books_at({(p, s) for p, s in last.items()}, depth=1_000_000)
    return {p: books[(p, s)] for p, s in last.items()}


def test_coinbase_trades_and_books_equal_the_recording(coinbase_frames):
    venue, client, events = coinbase_run(coinbase_frames)
    # trades: one per trade id (the subscribe snapshot repeats none here, but dedupe as the flow does)
    dedupe = TradeDedupe()
    got = {}
    for ev in events:
        if ev.kind is Kind.TRADE and dedupe.first_time(ev.payload[0]):
            trade_id, price, size, side = ev.payload
            got[trade_id] = {"product": ev.exchange_symbol, "price": Decimal(price), "size": Decimal(size),
                             "side": side, "ts_us": ev.exchange_ts_us}  # fmt: skip
    assert got == coinbase_truth.trades() and len(got) > 0
    trackers = track(events, COINBASE)
    truth = final_truth_books()
    assert set(trackers) == set(truth) == set(PRODUCTS)
    for product, tracker in trackers.items():
        assert tracker.counters.gaps == 0 and tracker.valid
        bids, asks = truth[product]
        assert decimals(tracker.book.bids.top(1_000_000)) == bids
        assert decimals(tracker.book.asks.top(1_000_000)) == asks
    assert client.resyncs == 0
    assert venue.sessions[0]["subscribed"].keys() >= {"l2_data", "market_trades", "heartbeats"}


def test_coinbase_sequence_jump_resubscribes_level2_and_recovers(coinbase_frames):
    l2 = [f.index for f in coinbase_frames if f.channel == "l2_data"]
    lost = l2[len(l2) // 2]
    venue, client, events = coinbase_run(coinbase_frames, drop={lost})
    session = venue.sessions[0]
    assert session["dropped"] == 1
    gaps = [ev for ev in events if ev.kind is Kind.CONNECTION_GAP]
    assert {ev.symbol for ev in gaps} == set(PRODUCTS)  # one jump invalidates every book on the connection
    assert client.resyncs == len(PRODUCTS) and session["snapshots_on_resubscribe"] == len(PRODUCTS)
    trackers = track(events, COINBASE)
    truth = final_truth_books()
    for product, tracker in trackers.items():
        assert tracker.counters.gaps == 1 and tracker.counters.resyncs == 1 and tracker.valid
        bids, asks = truth[product]
        assert decimals(tracker.book.bids.top(1_000_000)) == bids
        assert decimals(tracker.book.asks.top(1_000_000)) == asks


def kraken_run(drop: set[int] | None = None, depth: int = 10):
    market = SyntheticMarket(KRAKEN_SYMBOLS, depth=40, seed=11)
    venue = KrakenV2SyntheticVenue(market, messages=2000, trade_every=7, drop_updates=drop)
    symbols = [s.replace("-", "/") for s in KRAKEN_SYMBOLS]
    with ExchangeSimulator(venue) as sim:
        cfg = KrakenConfig(
            ws_url=f"{sim.ws_url}/v2", rest_url=sim.http_url, symbols=symbols, book_depth=depth
        )
        q: queue.Queue = queue.Queue()
        client = KrakenClient(cfg, ConnectorConfig(stop_at_replay_end=True), symbols, {"book", "trade"}, 0, q)
        events = run_client(client, q)
    return market, venue, client, events


def test_kraken_books_equal_the_synthetic_truth_with_every_checksum_matching():
    market, venue, client, events = kraken_run(depth=10)
    trackers = track(events, KRAKEN)
    assert set(trackers) == set(KRAKEN_SYMBOLS)  # BTC arrives as XBT/USD in AssetPairs: mapped to BTC
    book_events = sum(1 for ev in events if ev.kind in (Kind.DEPTH_SNAPSHOT, Kind.DEPTH_DIFF))
    assert sum(t.counters.checksum.match for t in trackers.values()) == book_events > 1000
    for symbol, tracker in trackers.items():
        assert tracker.counters.checksum.mismatch == 0 and tracker.counters.gaps == 0
        truth = market.books[symbol]
        assert tracker.book.bids.top(100) == truth.bids.top(10) and tracker.book.asks.top(
            100
        ) == truth.asks.top(10)
    trades = [ev.payload for ev in events if ev.kind is Kind.TRADE]
    assert trades == [(str(t.trade_id), t.price, t.qty, t.taker_side) for t in market.truth.trades]
    assert client.resyncs == 0 and venue.sessions[0].resubscribes == 0
    assert client.system_status == "online"  # the `status` channel frame sent on connect


def test_kraken_lost_update_is_caught_by_the_checksum_and_resubscribed():
    market, venue, client, events = kraken_run(drop={300})
    session = venue.sessions[0]
    assert session.dropped == 1
    trackers = track(events, KRAKEN)
    assert sum(t.counters.checksum.mismatch for t in trackers.values()) == 1
    assert client.resyncs == 1 and session.resubscribes == 1
    assert [r["method"] for r in session.requests if r["method"] != "ping"][-2:] == [
        "unsubscribe",
        "subscribe",
    ]
    for symbol, tracker in trackers.items():
        assert tracker.valid
        truth = market.books[symbol]
        assert tracker.book.bids.top(100) == truth.bids.top(10) and tracker.book.asks.top(
            100
        ) == truth.asks.top(10)


def test_kraken_lost_connection_marks_every_book_and_recovers_on_the_new_one():
    market = SyntheticMarket(KRAKEN_SYMBOLS, depth=40, seed=13)
    venue = KrakenV2SyntheticVenue(
        market, messages=3000, rate=1500, trade_every=0, cut_first_connection_after=300
    )
    symbols = [s.replace("-", "/") for s in KRAKEN_SYMBOLS]
    with ExchangeSimulator(venue) as sim:
        cfg = KrakenConfig(ws_url=f"{sim.ws_url}/v2", rest_url=sim.http_url, symbols=symbols)
        q: queue.Queue = queue.Queue()
        connector = ConnectorConfig(stop_at_replay_end=True, reconnect_initial_s=0.1)
        client = KrakenClient(cfg, connector, symbols, {"book"}, 0, q)
        events = run_client(client, q)
    assert len(venue.sessions) == 2  # reconnected
    gaps = [ev for ev in events if ev.kind is Kind.CONNECTION_GAP]
    assert sorted(ev.symbol for ev in gaps) == sorted(KRAKEN_SYMBOLS)
    trackers = track(events, KRAKEN)
    for symbol, tracker in trackers.items():
        assert tracker.counters.gaps == 1 and tracker.counters.resyncs == 1 and tracker.valid
        assert tracker.counters.checksum.mismatch == 0
        truth = market.books[symbol]
        assert tracker.book.bids.top(100) == truth.bids.top(10) and tracker.book.asks.top(
            100
        ) == truth.asks.top(10)


class _RecordingBackoff(Backoff):
    """The reconnect loop's backoff, recording the ceiling of every delay it hands out."""

    ceilings: list[float] = []

    def next_delay(self, at_least: float = 0.0) -> float:
        _RecordingBackoff.ceilings.append(self.ceiling())
        return super().next_delay(at_least)


def test_kraken_connection_made_after_the_market_ended_is_closed_as_end_of_replay():
    """A reconnect that races the end of the market (the chaos run's last ban) is served its books and
    then gets the end-of-replay close; before, it was never closed and a `stop_at_replay_end` flow never
    ended. (A live-like client, `stop_at_replay_end: false`, takes the close as a lost connection.)"""
    market = SyntheticMarket(KRAKEN_SYMBOLS, depth=10, seed=5)
    venue = KrakenV2SyntheticVenue(market, messages=20, start_after_s=0.05)

    async def connect_and_wait_for_close(url: str) -> int | None:
        async with websockets.connect(url) as ws:
            params = {"channel": "book", "symbol": [KRAKEN_SYMBOLS[0].replace("-", "/")], "depth": 10}
            await ws.send(orjson.dumps({"method": "subscribe", "params": params}).decode())
            with contextlib.suppress(websockets.ConnectionClosed):
                async with asyncio.timeout(10):
                    async for _ in ws:
                        pass
            return ws.close_code

    with ExchangeSimulator(venue) as sim:
        url = f"{sim.ws_url}/v2"
        assert asyncio.run(connect_and_wait_for_close(url)) == 4100  # the market's end closes it
        deadline = time.monotonic() + 10  # the close reaches the client before the feed's task ends
        while not (venue.feed.task is not None and venue.feed.task.done()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert venue.feed.task.done()
        # after the end: served its subscription (the final book), then closed the same way
        assert asyncio.run(connect_and_wait_for_close(url)) == 4100
        assert venue.sessions[-1].books


@pytest.mark.parametrize("channels", [{"book"}, {"trade"}], ids=["book-snapshot", "trade-ack"])
def test_kraken_reconnect_that_is_never_subscribed_times_out_counts_and_backs_off(
    channels, monkeypatch, caplog
):
    """After the market ended the venue accepts sockets and answers pings but not subscribes: every such
    connection is closed after `subscribe_timeout_s`, counted, logged, and retried with a growing backoff
    (the first connection was served: its acks/snapshots confirm it, so it never times out)."""
    monkeypatch.setattr(ws_client, "Backoff", _RecordingBackoff)
    _RecordingBackoff.ceilings = []
    market = SyntheticMarket(KRAKEN_SYMBOLS, depth=20, seed=17)
    venue = KrakenV2SyntheticVenue(market, messages=300, trade_every=3, silent_after_end=True)
    symbols = [s.replace("-", "/") for s in KRAKEN_SYMBOLS]
    timeouts = metrics.RECONNECTS.labels("kraken", "subscribe_timeout")
    before = timeouts._value.get()
    with ExchangeSimulator(venue) as sim:
        cfg = KrakenConfig(ws_url=f"{sim.ws_url}/v2", rest_url=sim.http_url, symbols=symbols,
                           subscribe_timeout_s=0.3)  # fmt: skip
        connector = ConnectorConfig(reconnect_initial_s=0.05, reconnect_max_s=0.4)  # keeps reconnecting
        client = KrakenClient(cfg, connector, symbols, channels, 0, queue.Queue())
        client.start()
        deadline = time.monotonic() + 20
        while timeouts._value.get() < before + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        client.stop()
    timed_out = timeouts._value.get() - before
    assert timed_out >= 3
    served, *silent = venue.sessions
    assert served.requests and (served.books or served.trades)  # the first connection was subscribed
    assert len(silent) >= timed_out  # one timeout per unanswered connection, never for the served one
    assert all(not s.books and not s.trades for s in silent)
    assert caplog.text.count("no subscription ack/snapshot within 0.3 s") >= timed_out
    # the served connection resets the backoff; the unanswered ones do not: each retry waits longer
    assert _RecordingBackoff.ceilings[:3] == [0.05, 0.1, 0.2]
