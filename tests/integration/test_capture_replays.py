"""A `cryptoflow capture` taken from a live feed (here the simulator over real sockets) replays with no
code change: `cryptoflow verify` reads the capture directory, and the simulator serves it again."""

import pytest

from cryptoflow.demo import demo_environment
from cryptoflow.simulator.binance_spot import BinanceSpotVenue
from cryptoflow.verify import verify_paths
from tests.support.crash import capture
from tests.support.recording_truth import BINANCE_HTTP, BINANCE_WS

pytestmark = pytest.mark.integration


@pytest.fixture
def capture_dir(binance_spot_simulator, tmp_path):
    env = demo_environment(binance_spot_simulator, tmp_path / "wh")
    out = tmp_path / "capture"
    capture(env, out)
    return out


def test_verify_reads_a_capture_directory_like_the_original_recording(capture_dir):
    original = verify_paths([BINANCE_WS, BINANCE_HTTP]).report()["symbols"]
    captured = verify_paths([capture_dir]).report()["symbols"]
    assert set(captured) == set(original) and captured
    for key, stats in captured.items():
        assert stats["synced"] and stats["gaps"] == 0 and stats["crossed"] == 0
        assert stats["applied"] == original[key]["applied"]  # every diff of the recording, once


def test_simulator_serves_a_capture_directory(capture_dir):
    original = BinanceSpotVenue.from_cryptofeed_v1()
    replayed = BinanceSpotVenue.from_recording(capture_dir)
    captured_streams = {f.stream for f in replayed.frames}
    assert captured_streams and all("@depth" in s or "@aggTrade" in s for s in captured_streams)
    # shards are captured into separate journals: every stream keeps its exact frames in their order
    for stream in captured_streams:
        assert [f.text for f in replayed.frames if f.stream == stream] == [
            f.text for f in original.frames if f.stream == stream
        ]
    assert len(replayed.frames) == sum(f.stream in captured_streams for f in original.frames)
    assert replayed.snapshots.keys() == original.snapshots.keys()
