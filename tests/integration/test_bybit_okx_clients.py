"""Bybit v5 and OKX v5 clients against the simulator over real sockets.

Rows (book levels, trades, funding) must equal what the recording holds, counted with the standard
library (tests/support/bybit_okx_truth.py); a frame lost in transit must make the client resubscribe
the book and the fresh snapshot must equal the recording's book at that snapshot's id.
"""

from __future__ import annotations

import queue
from collections import Counter
from decimal import Decimal

import pytest

from connectors.bybit.client import BybitClient
from connectors.okx.client import OkxClient
from cryptoflow.model import Kind, RawEvent
from cryptoflow.simulator.bybit import BybitVenue
from cryptoflow.simulator.okx import SEQ_BASE, WS_PATH, OkxVenue
from cryptoflow.simulator.server import ExchangeSimulator
from operators.book.tracker import BYBIT, OKX, BookTracker
from tests.support import bybit_okx_truth as truth
from tests.support.subscribe_clients import ALL, bybit_clients, okx_client, run_to_end

SPOT = ["BTCUSDT", "ETHUSDT"]
LINEAR = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"]
OKX_IDS = ["BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527"]


def _run_bybit(
    venue: BybitVenue, speed: float = 0.0, **cfg_fields
) -> tuple[list[RawEvent], list[BybitClient]]:
    with ExchangeSimulator(venue, speed=speed) as sim:
        q: queue.Queue = queue.Queue()
        clients = bybit_clients(sim, {"spot": SPOT, "linear": LINEAR}, ALL, q, **cfg_fields)
        return run_to_end(clients, q), clients


def _levels(events: list[RawEvent], key) -> Counter:
    out: Counter = Counter()
    for e in events:
        if e.kind in (Kind.DEPTH_SNAPSHOT, Kind.DEPTH_DIFF):
            for side, levels in (("bid", e.payload[0]), ("ask", e.payload[1])):
                for price, qty in levels:
                    out[key(e, side, Decimal(price), Decimal(qty))] += 1
    return out


def test_bybit_rows_equal_the_recording():
    events, clients = _run_bybit(BybitVenue.from_v3(), max_args_per_subscribe=3)
    category = {"spot": "spot", "perp": "linear"}
    got = _levels(events, lambda e, s, p, q: (category[e.market], e.exchange_symbol, s, p, q,
                                             e.kind is Kind.DEPTH_SNAPSHOT))  # fmt: skip
    assert got == truth.bybit_levels()
    trades = Counter((category[e.market], e.exchange_symbol, *e.payload[:1], Decimal(e.payload[1]),
                      Decimal(e.payload[2]), e.payload[3]) for e in events if e.kind is Kind.TRADE)  # fmt: skip
    assert trades == truth.bybit_trades()
    funding = Counter(e.exchange_symbol for e in events if e.kind is Kind.FUNDING)
    assert funding == truth.bybit_funding_messages()
    assert all(
        e.payload.funding_rate and e.payload.next_funding_ts_us for e in events if e.kind is Kind.FUNDING
    )
    # normalized from instruments-info, markets from the URL / contractType
    assert {(e.market, e.symbol) for e in events} >= {("spot", "BTC-USDT"), ("perp", "DOGE-USDT")}
    assert sum(c.resyncs for c in clients) == 0


def test_bybit_spot_refuses_more_than_ten_args_and_the_client_respects_it():
    venue = BybitVenue.from_v3()
    _run_bybit(venue)  # default max_args_per_subscribe = 10; linear has 16 topics -> 2 requests
    assert venue.sub_stats.refused == Counter()
    assert venue.sub_stats.requests[("/v5/public/linear", "subscribe")] == 2


def test_bybit_dropped_delta_resyncs_with_a_fresh_snapshot():
    frames = BybitVenue.from_v3().paths["/v5/public/spot"]
    btc = [i for i, f in enumerate(frames) if f.topic == "orderbook.200.BTCUSDT" and f.book and not f.book[1]]
    dropped = btc[100]
    venue = BybitVenue.from_v3(drop={("/v5/public/spot", dropped)})
    events, clients = _run_bybit(venue, speed=20)  # the replay must outlast the client's resubscribe
    assert venue.sub_stats.dropped == 1
    assert venue.sub_stats.topics[("unsubscribe", "orderbook.200.BTCUSDT")] == 1
    assert venue.sub_stats.snapshots_served["orderbook.200.BTCUSDT"] == 1
    assert sum(c.resyncs for c in clients) == 1
    spot_btc = [
        e for e in events if e.market == "spot" and e.exchange_symbol == "BTCUSDT" and e.seq is not None
    ]
    snaps = [e for e in spot_btc if e.kind is Kind.DEPTH_SNAPSHOT]
    assert len(snaps) == 2  # the recorded one, then the resync
    fresh = snaps[1]
    want_bids, want_asks = truth.bybit_book_at("spot", "BTCUSDT", fresh.seq)
    assert {Decimal(p): Decimal(q) for p, q in fresh.payload[0]} == want_bids
    assert {Decimal(p): Decimal(q) for p, q in fresh.payload[1]} == want_asks
    # the book engine sees exactly one gap, one resync, and ends on the recording's final book
    tracker = BookTracker(BYBIT)
    for e in spot_btc:
        tracker.on_event(e)
    assert (tracker.counters.gaps, tracker.counters.resyncs) == (1, 1)
    last_u = max(e.seq for e in spot_btc)
    final_bids, final_asks = truth.bybit_book_at("spot", "BTCUSDT", last_u)
    assert {Decimal(p): Decimal(q) for p, q in tracker.book.bids.top(10_000)} == final_bids
    assert {Decimal(p): Decimal(q) for p, q in tracker.book.asks.top(10_000)} == final_asks


def _run_okx(venue: OkxVenue, speed: float = 0.0) -> tuple[list[RawEvent], OkxClient]:
    with ExchangeSimulator(venue, speed=speed) as sim:
        q: queue.Queue = queue.Queue()
        client = okx_client(sim, OKX_IDS, ALL, q)
        return run_to_end([client], q), client


def test_okx_rows_equal_the_recording():
    venue = OkxVenue.from_cryptofeed_v1()
    events, client = _run_okx(venue)
    got = _levels(events, lambda e, s, p, q: (e.exchange_symbol, s, p, q, e.kind is Kind.DEPTH_SNAPSHOT))
    assert got == truth.okx_levels()
    trades = Counter((e.exchange_symbol, e.payload[0], Decimal(e.payload[1]), Decimal(e.payload[2]), e.payload[3])
                     for e in events if e.kind is Kind.TRADE)  # fmt: skip
    assert trades == truth.okx_trades()
    assert {(e.exchange_symbol, e.market, e.symbol) for e in events} == {
        ("BTC-USDT", "spot", "BTC-USDT"), ("UNI-USD-SWAP", "perp", "UNI-USD"), ("BTC-USD-220527", "future", "BTC-USD"),
    }  # fmt: skip
    # every recorded checksum verifies on the client's stream
    for inst in OKX_IDS:
        tracker = BookTracker(OKX)
        for e in events:
            if e.exchange_symbol == inst:
                tracker.on_event(e)
        assert tracker.counters.checksum.mismatch == 0 and tracker.counters.checksum.match > 80
    # acks per arg, subscriptions: books + trades per id, funding for the swap, liquidations per type
    subscribed = {t for (op, t), n in venue.sub_stats.topics.items() if op == "subscribe"}
    assert ("funding-rate", "UNI-USD-SWAP") in subscribed and ("liquidation-orders", "FUTURES") in subscribed
    assert ("funding-rate", "BTC-USDT") not in subscribed and client.resyncs == 0


def test_okx_dropped_update_resyncs_by_seq_id_chain():
    frames = OkxVenue.from_cryptofeed_v1(stamp_seq_ids=True).paths[WS_PATH]
    uni = [
        i for i, f in enumerate(frames) if f.topic == ("books", "UNI-USD-SWAP") and f.book and not f.book[1]
    ]
    venue = OkxVenue.from_cryptofeed_v1(stamp_seq_ids=True, drop={(WS_PATH, uni[40])})
    events, client = _run_okx(venue, speed=10)  # 12 s recorded: the replay must outlast the resubscribe
    assert venue.sub_stats.dropped == 1 and client.resyncs == 1
    assert venue.sub_stats.topics[("unsubscribe", ("books", "UNI-USD-SWAP"))] == 1
    book_events = [e for e in events if e.exchange_symbol == "UNI-USD-SWAP" and e.kind in
                   (Kind.DEPTH_SNAPSHOT, Kind.DEPTH_DIFF)]  # fmt: skip
    snaps = [e for e in book_events if e.kind is Kind.DEPTH_SNAPSHOT]
    assert len(snaps) == 2 and snaps[1].prev_seq == -1
    want_bids, want_asks = truth.okx_book_after("UNI-USD-SWAP", snaps[1].seq - SEQ_BASE - 1)
    assert {Decimal(p): Decimal(q) for p, q in snaps[1].payload[0]} == want_bids
    assert {Decimal(p): Decimal(q) for p, q in snaps[1].payload[1]} == want_asks
    tracker = BookTracker(OKX)
    for e in book_events:
        tracker.on_event(e)
    assert (tracker.counters.gaps, tracker.counters.resyncs) == (1, 1)
    assert tracker.counters.checksum.mismatch == 0


@pytest.mark.parametrize("factory", [BybitVenue.from_v1])
def test_bybit_level1_recordings_replay(factory):
    venue = factory()
    with ExchangeSimulator(venue) as sim:
        q: queue.Queue = queue.Queue()
        spot = sorted({str(f.topic).rsplit(".", 1)[1] for f in venue.paths["/v5/public/spot"]})
        linear = sorted({str(f.topic).rsplit(".", 1)[1] for f in venue.paths["/v5/public/linear"]})
        events = run_to_end(
            bybit_clients(sim, {"spot": spot, "linear": linear}, {"depth"}, q, book_depth=1), q
        )
    snapshots = Counter(e.market for e in events if e.kind is Kind.DEPTH_SNAPSHOT)
    recorded = Counter()
    for market, name in (("perp", "cryptofeed_BYBIT.ws.1.0"), ("spot", "cryptofeed_BYBIT.ws.2.0")):
        text = (truth.FIXTURES / "bybit" / name).read_text()
        recorded[market] = sum('"topic":"orderbook.1.' in line and '"type":"snapshot"' in line
                               for line in text.splitlines())  # fmt: skip
    assert snapshots == recorded and recorded["spot"] > 100


def test_one_process_serves_several_venues():
    from cryptoflow.simulator.venues import start_venues

    sims = start_venues(["bybit", "okx"], "127.0.0.1", 0, 0.0)
    try:
        assert len({s.port for s in sims.values()}) == 2
        from connectors.http import http_get

        body = http_get(f"{sims['okx'].http_url}/api/v5/public/instruments?instType=SWAP", 5).body
        assert b"UNI-USD-SWAP" in body
        body = http_get(f"{sims['bybit'].http_url}/v5/market/instruments-info?category=spot", 5).body
        assert b'"BTCUSDT"' in body
    finally:
        for s in sims.values():
            s.stop()


def test_a_cryptoflow_capture_replays_without_code_change(tmp_path):
    """The same traffic rewritten in CryptoFlow's capture format serves the same rows."""
    from connectors.recordings.capture import CaptureWriter
    from connectors.recordings.cryptofeed_v1 import read_cryptofeed_v1
    from connectors.recordings.cryptofeed_v3 import read_cryptofeed_v3

    bybit_capture, okx_capture = tmp_path / "bybit.capture.jsonl", tmp_path / "okx.capture.jsonl"
    with bybit_capture.open("w") as out:
        CaptureWriter(out, "bybit", 0).records(read_cryptofeed_v3(truth.BYBIT_V3))
    with okx_capture.open("w") as out:
        CaptureWriter(out, "okx", 0).records(read_cryptofeed_v1(truth.OKX_V1))
    events, _ = _run_bybit(BybitVenue.from_recordings([bybit_capture]))
    category = {"spot": "spot", "perp": "linear"}
    got = _levels(events, lambda e, s, p, q: (category[e.market], e.exchange_symbol, s, p, q,
                                             e.kind is Kind.DEPTH_SNAPSHOT))  # fmt: skip
    assert got == truth.bybit_levels()
    events, _ = _run_okx(OkxVenue.from_recordings([okx_capture]))
    got = _levels(events, lambda e, s, p, q: (e.exchange_symbol, s, p, q, e.kind is Kind.DEPTH_SNAPSHOT))
    assert got == truth.okx_levels()
