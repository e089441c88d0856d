"""Fault injection reaches venues that drive their own connections (Kraken v2 synthetic): injected
disconnects lose frames (logged), stalls hold frames and then deliver them in order, bursts speed up
the feed, bans drop the address's sockets, and each connection's log names the last book frame the
client really received. Truth is the client's own transcript, compared with the simulator's log."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from cryptoflow.simulator.faults import FaultPlan
from cryptoflow.simulator.kraken import KrakenV2SyntheticVenue
from cryptoflow.simulator.server import ExchangeSimulator
from cryptoflow.simulator.synthetic.market import SyntheticMarket

pytestmark = pytest.mark.integration
SYMBOLS = ["BTC-USD", "ETH-USD"]


def venue(messages: int, rate: float = 0.0) -> KrakenV2SyntheticVenue:
    market = SyntheticMarket(SYMBOLS, depth=20, seed=5, step_us=10_000)
    return KrakenV2SyntheticVenue(market, messages=messages, rate=rate, trade_every=0, start_after_s=0.2)


KRAKEN_BOOKS = {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD", "ETH/USD"]}}


async def transcript(url: str, request: dict = KRAKEN_BOOKS) -> tuple[list[str], int | None]:
    """Send `request` (default: both Kraken books) and read until the server closes: (frames
    received, close code)."""
    frames: list[str] = []
    async with connect(url, max_size=None, ping_interval=None) as ws:
        await ws.send(json.dumps(request))
        try:
            async for raw in ws:
                frames.append(raw if isinstance(raw, str) else raw.decode())
        except ConnectionClosed:
            pass
        return frames, ws.close_code


def last_book_frames(frames: list[str]) -> dict[str, str]:
    out = {}
    for text in frames:
        msg = json.loads(text)
        if msg.get("channel") == "book":
            out["book:" + msg["data"][0]["symbol"]] = text
    return out


def test_disconnect_loses_frames_and_the_log_names_the_last_one_received():
    plan = FaultPlan(seed=3, disconnect_prob=0.02)
    with ExchangeSimulator(venue(5000), faults=plan) as sim:
        frames, code = asyncio.run(transcript(f"{sim.ws_url}/v2"))
        stats = sim.stats
    assert code == 1011 and stats.faults["disconnect"] == 1
    [session] = stats.sessions
    assert session.ended_by == "disconnect" and session.close_code == 1011
    assert session.delivered == len(frames) and session.lost >= 1
    assert session.last == last_book_frames(frames) and session.last
    # the lost frames are logged, and none of them reached the client
    lost = [text for path, text in stats.skipped if path == "/v2"]
    assert len(lost) == session.lost == stats.frames_skipped and not set(lost) & set(frames)


def test_stalls_deliver_every_frame_in_order_and_bursts_speed_up_the_feed():
    plan = FaultPlan(seed=4, stall_prob=0.02, stall_s=0.05, burst_prob=0.01, burst_frames=50)
    with ExchangeSimulator(venue(1500), faults=plan) as sim:
        frames, code = asyncio.run(transcript(f"{sim.ws_url}/v2"))
        stats = sim.stats
    assert code == 4100 and stats.faults["stall"] > 0 and stats.faults["burst"] > 0
    [session] = stats.sessions
    assert session.lost == 0 and session.delivered == len(frames)
    # every book frame the encoder made for this connection arrived, in order: the checksums chain
    books = [json.loads(t) for t in frames if t.startswith('{"channel":"book"')]
    assert books[0]["type"] == "snapshot" and len(books) == venue_book_frames(sim)
    assert session.last == last_book_frames(frames)


def venue_book_frames(sim: ExchangeSimulator) -> int:
    return sum(s.book_frames for s in sim.venue.sessions) + len(SYMBOLS)  # updates + snapshots


def test_burst_tempo_runs_a_paced_feed_faster():
    plan = FaultPlan(seed=1, burst_prob=1.0, burst_frames=1_000_000, burst_factor=10.0)
    with ExchangeSimulator(venue(400, rate=20.0), faults=plan) as sim:
        took = asyncio.run(_timed(f"{sim.ws_url}/v2"))
    assert took < 10.0  # 400 changes at 20/s take 20 s unbursted, 2 s at 10x


async def _timed(url: str) -> float:
    start = asyncio.get_running_loop().time()
    await transcript(url)
    return asyncio.get_running_loop().time() - start - 0.2


def test_ban_drops_the_live_socket_of_a_serve_venue():
    plan = FaultPlan(seed=2)
    with ExchangeSimulator(venue(100_000, rate=500.0), faults=plan) as sim:

        async def run() -> tuple[list[str], int | None]:
            task = asyncio.ensure_future(transcript(f"{sim.ws_url}/v2"))
            while not sim.stats.sessions or not sim.stats.sessions[0].last:
                await asyncio.sleep(0.05)
            sim.faults.ban("127.0.0.1", 30)
            sim.drop_connections("127.0.0.1")
            return await task

        frames, code = asyncio.run(run())
        stats = sim.stats
    assert code == 1008 and stats.faults["ban_drop"] == 1
    [session] = stats.sessions
    assert session.ended_by == "ban_drop" and session.last == last_book_frames(frames)
    assert stats.refused == {} and sim.faults.is_banned("127.0.0.1")


def test_subscribe_session_venues_get_the_same_faults_okx_synthetic():
    """OKX/Bybit synthetic venues run `session` instead of `serve`: same disconnect path, no end-of-replay
    close after an injected disconnect, and the lost frames logged under the connection's path."""
    from cryptoflow.simulator.okx import WS_PATH
    from cryptoflow.simulator.synthetic_venues import OkxSyntheticVenue

    market = SyntheticMarket(["BTC-USDT", "ETH-USDT"], depth=20, seed=6)
    okx = OkxSyntheticVenue(market, messages=5000, trade_every=0, liquidation_every=0, funding_every=0,
                            start_after_s=0.2)  # fmt: skip

    books = {"op": "subscribe", "args": [{"channel": "books", "instId": i} for i in ("BTC-USDT", "ETH-USDT")]}
    with ExchangeSimulator(okx, faults=FaultPlan(seed=7, disconnect_prob=0.02)) as sim:
        frames, code = asyncio.run(transcript(f"{sim.ws_url}{WS_PATH}", books))
        stats = sim.stats
    [session] = stats.sessions
    assert code == 1011 and session.ended_by == "disconnect" and stats.replays_finished == 0
    assert session.delivered == len(frames) and any('"action":"snapshot"' in f for f in frames)
    lost = [text for path, text in stats.skipped if path == WS_PATH]
    assert len(lost) == session.lost >= 1 and not set(lost) & set(frames)
