"""A `cryptoflow capture` taken from a live feed (here the simulator over real sockets) replays with no
code change: `cryptoflow verify` reads the capture directory, and the simulator serves it again; and a
capture of every subscribe venue (Bybit, OKX, Coinbase, Kraken) replayed through a flow with
`journal.replay_dir` lands exactly the rows of a direct run of that flow."""

import os
from collections import Counter
from pathlib import Path

import pytest

from connectors.journal import JournalReader, RecordKind
from cryptoflow.capture import run_capture
from cryptoflow.config import load_settings
from cryptoflow.demo import demo_environment
from cryptoflow.simulator.binance_spot import BinanceSpotVenue
from cryptoflow.simulator.server import ExchangeSimulator
from cryptoflow.verify import verify_paths
from tests.support.crash import capture, replay_env, run_once, sql_env, table_rows
from tests.support.recording_truth import BINANCE_HTTP, BINANCE_WS
from tests.support.venue_matrix import CASES, VenueCase, stable

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


# what each compared flow reads: a capture of exactly those channels replays into exactly its rows (a
# capture of more channels does too, except where ids count every channel of a connection: Coinbase's
# `sequence_num`, the `seq` of its rows)
FLOW_CHANNELS = {"ticks": {"trades"}, "spot_delta": {"depth"}, "futures_delta": {"depth"}}


def direct_rows(case: VenueCase, flow: str, warehouse: Path) -> list[dict]:
    """The flow run straight against a fresh simulator of the venue (queue path, no journal)."""
    with ExchangeSimulator(case.make_venue()) as sim:
        env = {**case.env(sim), **sql_env(warehouse)}
        result = run_once(flow, env, None)
    assert result.returncode == 0, result.stderr[-3000:]
    return table_rows(env, flow)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_capture_of_each_venue_replays_through_its_flows_like_a_direct_run(case: VenueCase, tmp_path):
    for flow in case.flows:
        out = tmp_path / f"capture-{flow}"
        with ExchangeSimulator(case.make_venue()) as sim:
            env = case.env(sim)
            settings = load_settings(environ={**os.environ, **env})
            assert run_capture(settings, out, FLOW_CHANNELS[flow], venues=[case.name]) == 0
            frames_sent = sim.stats.frames_sent
        assert sorted(p.name for p in out.iterdir()) == [case.source]  # `<out>/<source>/<partition>`
        parts = sorted((out / case.source).iterdir())
        assert len(parts) > 1 and all(p.name.startswith("shard-") for p in parts)
        records = [r for part in parts for r in JournalReader(part).read(1_000_000)]
        kinds = Counter(r.kind for r in records)
        assert kinds[RecordKind.WS_FRAME] >= frames_sent > 0  # every replayed frame (plus subscribe acks)
        assert kinds[RecordKind.INSTRUMENTS] >= len(parts)
        direct = direct_rows(case, flow, tmp_path / f"direct-{flow}")
        replay = replay_env({**env, **sql_env(tmp_path / f"replay-{flow}")}, out, batch_size=1000)
        result = run_once(flow, replay, None)
        assert result.returncode == 0, result.stderr[-3000:]
        replayed = table_rows(replay, flow)
        assert direct and stable(replayed) == stable(direct), flow
