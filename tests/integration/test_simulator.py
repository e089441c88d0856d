"""The simulator over real sockets: Binance URL shapes, replay content, REST errors."""

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from connectors.http import http_get
from cryptoflow.simulator.server import REPLAY_END_CODE
from tests.support.recording_truth import BINANCE_WS, binance_snapshots

pytestmark = pytest.mark.integration


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, json.loads(resp.read())


async def collect(url: str) -> tuple[list[str], int]:
    frames = []
    async with connect(url) as ws:
        try:
            while True:
                frames.append(await ws.recv())
        except ConnectionClosed as closed:
            return frames, closed.rcvd.code


def test_combined_stream_replays_only_subscribed_streams_then_closes(binance_spot_simulator):
    url = f"{binance_spot_simulator.ws_url}/stream?streams=nknusdt@depth@100ms/lrcbtc@aggTrade"
    frames, code = asyncio.run(collect(url))
    recorded = [line.partition(": ")[2] for line in BINANCE_WS.read_text().splitlines()[1:] if line]
    expected = [f for f in recorded if json.loads(f)["stream"] in ("nknusdt@depth@100ms", "lrcbtc@aggTrade")]
    assert frames == expected  # byte-identical, in recorded order
    assert code == REPLAY_END_CODE
    assert binance_spot_simulator.stats.connections_by_ip["127.0.0.1"] == 1


def test_rest_depth_and_exchange_info(binance_spot_simulator):
    base = binance_spot_simulator.http_url
    status, body = get_json(f"{base}/api/v3/depth?symbol=NKNUSDT&limit=1000")
    assert status == 200 and body == binance_snapshots()["NKNUSDT"]
    _, small = get_json(f"{base}/api/v3/depth?symbol=NKNUSDT&limit=5")
    assert len(small["bids"]) == 5 and small["lastUpdateId"] == body["lastUpdateId"]
    _, info = get_json(f'{base}/api/v3/exchangeInfo?symbols=["NKNUSDT","LRCBTC"]')
    assert [(s["symbol"], s["baseAsset"], s["quoteAsset"]) for s in info["symbols"]] == [
        ("NKNUSDT", "NKN", "USDT"),
        ("LRCBTC", "LRC", "BTC"),
    ]


def test_rest_errors_look_like_binance(binance_spot_simulator):
    # each error response is closed: an open one keeps its socket, and the simulator's shutdown waits
    # for it (10 s)
    with pytest.raises(urllib.error.HTTPError) as err:
        get_json(f"{binance_spot_simulator.http_url}/api/v3/depth?symbol=NOPE")
    with err.value as response:
        assert response.code == 400 and json.loads(response.read())["code"] == -1121
    with pytest.raises(urllib.error.HTTPError) as err:
        get_json(f"{binance_spot_simulator.http_url}/nothing/here")
    with err.value as response:
        assert response.code == 404


async def subscribe_and_collect(url: str, streams: list[str]) -> tuple[list[dict], list[str], int]:
    """Connect without streams, SUBSCRIBE, list subscriptions, then read until the replay ends."""
    replies, frames = [], []
    async with connect(url) as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": streams, "id": 7}))
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 8}))
        try:
            while True:
                text = await ws.recv()
                msg = json.loads(text)
                (frames if "stream" in msg else replies).append(text if "stream" in msg else msg)
        except ConnectionClosed as closed:
            return replies, frames, closed.rcvd.code


def test_usdm_subscribe_on_an_open_socket_behind_the_url_split(binance_usdm_simulator):
    from tests.support.recording_truth import USDM_WS

    wanted = ["sushiusdt@depth@100ms", "ctkusdt@bookTicker", "ctkusdt@aggTrade"]
    recorded = [line.partition(": ")[2] for line in USDM_WS.read_text().splitlines()[1:] if line]
    base = binance_usdm_simulator.ws_url
    replies, frames, code = asyncio.run(subscribe_and_collect(f"{base}/public/stream", wanted))
    assert replies[0] == {"result": None, "id": 7} and replies[1] == {"result": sorted(wanted), "id": 8}
    public = ("sushiusdt@depth@100ms", "ctkusdt@bookTicker")  # aggTrade is not served on /public
    assert frames == [f for f in recorded if json.loads(f)["stream"] in public] and code == REPLAY_END_CODE
    _, frames, _ = asyncio.run(subscribe_and_collect(f"{base}/market/stream", wanted))
    assert frames == [f for f in recorded if json.loads(f)["stream"] == "ctkusdt@aggTrade"]
    _, frames, _ = asyncio.run(subscribe_and_collect(f"{base}/stream", wanted))  # legacy: everything
    assert frames == [f for f in recorded if json.loads(f)["stream"] in wanted]
    status, info = get_json(f"{binance_usdm_simulator.http_url}/fapi/v1/exchangeInfo")
    assert status == 200 and {s["contractType"] for s in info["symbols"]} == {"PERPETUAL", "CURRENT_QUARTER"}


def test_injected_429_and_418_carry_retry_after_on_rest_and_connect(binance_spot_venue):
    from websockets.exceptions import InvalidStatus

    from cryptoflow.simulator.faults import FaultPlan
    from cryptoflow.simulator.server import ExchangeSimulator

    plan = FaultPlan(retry_after_s=7, ban_after_429s=2, ban_s=90, throttled_ips={"127.0.0.1"})
    with ExchangeSimulator(binance_spot_venue, faults=plan) as sim:
        with pytest.raises(urllib.error.HTTPError) as err:
            get_json(f"{sim.http_url}/api/v3/depth?symbol=NKNUSDT")
        with err.value as response:  # closed, or the simulator's shutdown waits 10 s for its socket
            assert response.code == 429 and response.headers["Retry-After"] == "7"

        async def handshake():
            async with connect(f"{sim.ws_url}/stream?streams=nknusdt@depth@100ms"):
                pass

        with pytest.raises(InvalidStatus) as refused:
            asyncio.run(handshake())
        assert refused.value.response.status_code == 429
        # that was the second 429: the IP is now banned, and says for how long
        with pytest.raises(urllib.error.HTTPError) as err:
            get_json(f"{sim.http_url}/api/v3/ping")
        with err.value as response:
            assert response.code == 418 and response.headers["Retry-After"] == "90"
        assert sim.stats.refused == {
            ("127.0.0.1", "rest", 429): 1,
            ("127.0.0.1", "ws", 429): 1,
            ("127.0.0.1", "rest", 418): 1,
        }
        # another address is unaffected
        assert http_get(f"{sim.http_url}/api/v3/ping", 5, "127.0.0.2").status == 200
        assert sim.stats.rest_by_ip[("127.0.0.2", "/api/v3/ping")] == 1
    assert sim.stats.connections_by_ip == {}  # the refused handshake never became a connection
