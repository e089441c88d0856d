"""The pre-generated, paced Kraken v2 load generator (cryptoflow/simulator/synthetic/paced.py): its frames
are the live encoder's, a client reading them over a real socket ends on the true book with every checksum
matching, and a late subscription gets the book as it is at that point."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from connectors.kraken.parsing import KrakenV2Parser
from cryptoflow.runtime import process_settings
from cryptoflow.simulator.server import ExchangeSimulator
from cryptoflow.simulator.synthetic.encoders import KrakenV2Encoder
from cryptoflow.simulator.synthetic.market import SyntheticMarket
from cryptoflow.simulator.synthetic.paced import TAIL, PacedKrakenV2Venue, pregenerate
from operators.book.checksums import kraken_checksum
from operators.book.tracker import BookSettings, BookTracker

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD", "ADA-USD"]
V2 = [s.replace("-", "/") for s in SYMBOLS]
STAMP = b"2026-11-26T12:00:00.000001Z"


def _market() -> SyntheticMarket:
    return SyntheticMarket(SYMBOLS, depth=10, seed=3, keep_truth=False)


def _without_stamp(frame: str) -> str:
    return frame[: frame.rindex('"timestamp":"')]


def test_pregenerated_frames_are_the_live_encoders_frames():
    book = pregenerate(_market(), 400)
    live_market = _market()
    encoder = KrakenV2Encoder(live_market, 10)
    snapshots = {s.replace("-", "/"): _without_stamp(encoder.snapshot(s)) for s in SYMBOLS}
    updates: list[str] = []
    while len(updates) < 400:
        frame = encoder.update(live_market.next_change())
        if frame is not None:
            updates.append(_without_stamp(frame))
    assert {k: _without_stamp((v + STAMP + TAIL).decode()) for k, v in book.snapshots.items()} == snapshots
    assert [_without_stamp((h + STAMP + TAIL).decode()) for h in book.heads] == updates
    assert all(
        json.loads(h + STAMP + TAIL)["data"][0]["timestamp"] == STAMP.decode() for h in book.heads[:20]
    )


def _replay(frames: list[str]) -> tuple[dict[str, BookTracker], int]:
    """Parse and verify like the Kraken client does; (trackers, checksum mismatches)."""
    parser, trackers, mismatches = KrakenV2Parser(10), {}, 0
    for frame in frames:
        for event in parser.parse(frame, 0):
            tracker = trackers.setdefault(
                event.exchange_symbol, BookTracker("kraken", BookSettings(emit=False, stream="test"))
            )
            mismatches += bool(tracker.on_event(event).resync)
    return trackers, mismatches


async def _read_all(url: str, symbols: list[str]) -> tuple[list[str], int | None]:
    frames: list[str] = []
    async with connect(url, compression=None) as ws:
        await ws.send(json.dumps({"method": "subscribe", "params": {"channel": "book", "symbol": symbols}}))
        try:
            async for msg in ws:
                assert isinstance(msg, str)  # text frames, as Kraken sends
                frames.append(msg)
        except ConnectionClosed:
            pass
        return frames, ws.close_code


@pytest.mark.parametrize("rate", [0.0, 20_000.0])
def test_a_reader_over_a_socket_ends_on_the_true_book(rate):
    market = _market()
    book = pregenerate(market, 1500)  # leaves `market` at the truth after the last frame
    venue = PacedKrakenV2Venue(book, market, rate=rate, start_after_s=0.2)
    with ExchangeSimulator(venue, speed=0.0) as sim:
        frames, code = asyncio.run(_read_all(f"{sim.ws_url}/v2", V2))
    assert code == 4100
    updates = [f for f in frames if f.startswith('{"channel":"book","type":"update"')]
    assert len(updates) == 1500 == venue.changes_sent
    trackers, mismatches = _replay(frames)
    assert mismatches == 0
    for symbol, v2 in zip(SYMBOLS, V2, strict=True):
        got, truth = trackers[v2].book, market.books[symbol]
        assert got.bids.top(10) == truth.bids.top(10) and got.asks.top(10) == truth.asks.top(10)


def test_a_late_subscription_gets_the_book_at_that_point():
    book = pregenerate(_market(), 600)
    frames = [(book.snapshots[s] + STAMP + TAIL).decode() for s in V2]
    position = 377
    frames += [(h + STAMP + TAIL).decode() for h in book.heads[:position]]
    trackers, mismatches = _replay(frames)
    assert mismatches == 0
    for v2 in V2:
        view = book.book_at(v2, position)
        truth = trackers[v2].book
        assert view.bids.top(10) == truth.bids.top(10) and view.asks.top(10) == truth.asks.top(10)
        last = max(i for i in range(position) if book.symbols[i] == v2)
        sent_checksum = json.loads(book.heads[last] + STAMP + TAIL)["data"][0]["checksum"]
        assert kraken_checksum(view) == sent_checksum


def test_process_settings_sets_the_gil_switch_interval(monkeypatch):
    before_interval, before_handler = sys.getswitchinterval(), signal.getsignal(signal.SIGTERM)
    monkeypatch.setenv("CRYPTOFLOW_RUNTIME__SWITCH_INTERVAL_MS", "2.5")
    monkeypatch.delenv("CRYPTOFLOW_METRICS__PORT", raising=False)
    try:
        process_settings()
        assert sys.getswitchinterval() == pytest.approx(0.0025)
    finally:
        sys.setswitchinterval(before_interval)
        signal.signal(signal.SIGTERM, before_handler)


def test_a_connection_made_after_the_last_frame_gets_the_final_book_and_a_clean_close():
    """It used to get its snapshot and then silence on an open socket: a client could not tell a
    finished replay from a stalled feed."""
    market = _market()
    book = pregenerate(market, 300)  # leaves `market` at the truth after the last frame
    venue = PacedKrakenV2Venue(book, market, rate=0.0, start_after_s=0.1)

    async def first_then_late(url: str) -> tuple[list[str], int | None]:
        _, code = await _read_all(url, V2)
        assert code == 4100 and venue.finished_at is not None
        return await asyncio.wait_for(_read_all(url, V2), timeout=10)  # hung forever before

    with ExchangeSimulator(venue, speed=0.0) as sim:
        frames, code = asyncio.run(first_then_late(f"{sim.ws_url}/v2"))
    assert code == 4100
    snapshots = [f for f in frames if f.startswith('{"channel":"book","type":"snapshot"')]
    assert len(snapshots) == len(V2)
    trackers, mismatches = _replay(frames)
    assert mismatches == 0
    for symbol, v2 in zip(SYMBOLS, V2, strict=True):
        got, truth = trackers[v2].book, market.books[symbol]
        assert got.bids.top(10) == truth.bids.top(10) and got.asks.top(10) == truth.asks.top(10)
