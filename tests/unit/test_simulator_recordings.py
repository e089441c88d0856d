"""The Binance simulator venues load a live capture (`cryptoflow capture` format) like a cryptofeed
recording: same frames, snapshots and instruments, with a rotation's overlapping frames kept once."""

import io
import json

import orjson

from connectors.recordings.capture import CaptureWriter
from cryptoflow import paths
from cryptoflow.simulator.binance_usdm import BinanceUsdmVenue
from tests.support.book_truth import v1_server_frames


def test_a_live_capture_replays_like_the_cryptofeed_recording(tmp_path):
    frames = v1_server_frames(paths.BINANCE_USDM_WS)
    snapshots = [line for line in paths.BINANCE_USDM_HTTP.read_text().splitlines() if line]
    out = io.StringIO()
    cap = CaptureWriter(out, "binance", 1)
    # as our client captures it: exchangeInfo, /public and /market connections, then a rotation of /public
    info = paths.BINANCE_USDM_INSTRUMENTS.read_text()
    cap.http("rest", 1, "https://fapi.binance.com/fapi/v1/exchangeInfo", info)
    cap.connect("ws-0", 2, "wss://fstream.binance.com/public/stream")
    cap.connect("ws-1", 3, "wss://fstream.binance.com/market/stream")
    half = len(frames) // 2
    for i, (ts, raw) in enumerate(frames):
        public = json.loads(raw)["stream"].split("@", 1)[1].startswith(("depth", "bookTicker"))
        if i == half - 10:
            cap.connect("ws-2", round(ts * 1e6), "wss://fstream.binance.com/public/stream")
        cap.recv("ws-0" if public else "ws-1", round(ts * 1e6), raw)
        if public and half - 10 <= i < half:  # the replacement connection overlaps the old one
            cap.recv("ws-2", round(ts * 1e6) + 1, raw)
    for line in snapshots:
        url, _, rest = line.partition(" -> ")
        ts, _, body = rest.partition(": ")
        cap.http("rest", round(float(ts) * 1e6), url, body)
    path = tmp_path / "usdm.capture.jsonl"
    path.write_text(out.getvalue())

    captured = BinanceUsdmVenue.from_recording(path)
    recorded = BinanceUsdmVenue.from_cryptofeed_v1()
    assert [(f.stream, f.text) for f in captured.frames] == [(f.stream, f.text) for f in recorded.frames]
    assert captured.snapshots == recorded.snapshots and len(captured.snapshots) == 4
    assert captured.instruments == {e["symbol"]: e for e in orjson.loads(info)["symbols"]}
