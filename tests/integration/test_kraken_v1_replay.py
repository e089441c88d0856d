"""The simulator's Kraken WebSocket v1 endpoint replays the 2021 recordings byte for byte per
subscription, and the replayed book frames verify (every checksum) through the v1 parser and the engine.
Expected frames are read from the recording files with plain string handling."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from connectors.kraken.parsing import KrakenV1Parser
from cryptoflow.simulator.kraken import KrakenV2SyntheticVenue
from cryptoflow.simulator.kraken_v1 import V1_RECORDINGS, KrakenV1ReplayVenue
from cryptoflow.simulator.server import REPLAY_END_CODE, ExchangeSimulator
from cryptoflow.simulator.synthetic.market import SyntheticMarket
from operators.book.tracker import KRAKEN, BookSettings, BookTracker

pytestmark = pytest.mark.integration
PAIRS = ["XBT/CHF", "ADA/XBT"]


def recorded(path, pairs) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        head, sep, frame = line.partition(": ")
        if not sep or " " in head:  # connect / client lines
            continue
        msg = json.loads(frame)
        pair = msg[-1] if isinstance(msg, list) else msg.get("pair")
        if pair in pairs:
            out.append(frame)
    return out


async def session(url: str, subscriptions: list[dict]) -> tuple[list[str], int]:
    frames = []
    async with connect(url, max_size=1 << 24) as ws:
        for sub in subscriptions:
            await ws.send(json.dumps({"event": "subscribe", "pair": PAIRS, "subscription": sub}))
        try:
            while True:
                frames.append(await ws.recv())
        except ConnectionClosed as closed:
            return frames, closed.rcvd.code


def test_v1_book_and_trade_replay_byte_identical_and_checksums_verify():
    book_path, trade_path = V1_RECORDINGS[2], V1_RECORDINGS[0]
    venue = KrakenV2SyntheticVenue(
        SyntheticMarket(["BTC-USD"]), messages=0, v1=KrakenV1ReplayVenue.from_recordings()
    )
    with ExchangeSimulator(venue) as sim:
        frames, code = asyncio.run(
            session(sim.ws_url + "/", [{"name": "book", "depth": 1000}, {"name": "trade"}])
        )
    assert code == REPLAY_END_CODE
    assert json.loads(frames[0])["event"] == "systemStatus"
    book = [f for f in frames if "book-1000" in f]
    trade = [f for f in frames if '"trade"' in f]
    assert book == recorded(book_path, PAIRS) and len(book) > 100
    assert trade == recorded(trade_path, PAIRS)
    heartbeats = [f for f in frames if '"heartbeat"' in f]
    assert len(frames) == 1 + len(book) + len(trade) + len(heartbeats)
    parser, trackers = KrakenV1Parser(), {}
    for f in book:
        for ev in parser.parse(f, 0):
            trackers.setdefault(ev.symbol, BookTracker(KRAKEN, BookSettings(emit=False))).on_event(ev)
    expected_checks = sum(1 for f in book if isinstance(json.loads(f), list) and '"c":' in f)
    assert sum(t.counters.checksum.match for t in trackers.values()) == expected_checks > 100
    assert all(t.counters.checksum.mismatch == 0 and t.counters.gaps == 0 for t in trackers.values())
