"""Issue #4: a capture taken from a live exchange replays with no code change. For every subscribe venue
(Bybit, OKX, Coinbase, Kraken): the simulator replaying the venue's recording -> `cryptoflow capture` ->
a second simulator serving that capture -> the venue's book flow lands the rows of the flow run straight
against the first simulator, and `cryptoflow verify <capture>` reports the counts of the original."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import orjson
import pytest

from cryptoflow import paths
from cryptoflow.capture import run_capture
from cryptoflow.cli import main
from cryptoflow.config import load_settings
from cryptoflow.simulator.bybit import BYBIT_V3
from cryptoflow.simulator.okx import OKX_WS
from cryptoflow.simulator.server import ExchangeSimulator
from cryptoflow.simulator.venues import capture_venues, start_capture_venues
from cryptoflow.verify import verify_paths
from tests.support.crash import run_once, sql_env, table_rows
from tests.support.venue_matrix import CASES, VenueCase, stable

pytestmark = pytest.mark.integration

CHANNELS = {"depth", "trades"}
# the recording each simulator venue replays (Kraken: the synthetic market, so no recording)
ORIGINAL = {"bybit": [BYBIT_V3], "okx": [OKX_WS], "coinbase": [paths.COINBASE_V3], "kraken": None}
BOOK_FLOW = {"bybit": "futures_delta", "okx": "spot_delta", "coinbase": "spot_delta", "kraken": "spot_delta"}
SIM_NAME = {"bybit": "bybit", "okx": "okx", "coinbase": "coinbase", "kraken": "kraken"}


def capture_of(case: VenueCase, venue, out: Path) -> None:
    with ExchangeSimulator(venue) as sim:
        settings = load_settings(environ={**os.environ, **case.env(sim)})
        assert run_capture(settings, out, CHANNELS, venues=[case.name]) == 0


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> Path:
    """One capture directory holding every subscribe venue (`<out>/<source>/<shard>`)."""
    out = tmp_path_factory.mktemp("capture")
    for case in CASES:
        capture_of(case, case.make_venue(), out)
    return out


def books(path: Path) -> dict[str, dict]:
    return verify_paths([path]).report()["symbols"]


def flow_rows(case: VenueCase, venue, flow: str, warehouse: Path) -> list[dict]:
    with ExchangeSimulator(venue) as sim:
        env = {**case.env(sim), **sql_env(warehouse)}
        result = run_once(flow, env, None)
    assert result.returncode == 0, result.stderr[-3000:]
    return table_rows(env, flow)


def test_simulate_capture_serves_every_venue_of_a_capture_on_its_own_port(captures):
    sims = start_capture_venues(captures, "127.0.0.1", 0, speed=0.0)
    try:
        assert sorted(sims) == sorted(SIM_NAME.values())
        assert len({sim.ws_url for sim in sims.values()}) == len(sims)
    finally:
        for sim in sims.values():
            sim.stop()
    with pytest.raises(ValueError, match="no capture of"):
        start_capture_venues(captures / "okx", "127.0.0.1", 0, speed=0.0, names=["bybit"])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_verify_reads_the_capture_of_each_venue_like_the_original(case: VenueCase, captures):
    source = captures / case.source
    captured = books(source)
    assert captured and all(s["synced"] and not s["gaps"] and not s["crossed"] for s in captured.values())
    if ORIGINAL[case.name] is not None:
        original = books(ORIGINAL[case.name][0])
        assert set(captured) <= set(original)  # the dev config's symbols of the recording
        for label, stats in captured.items():
            assert stats["applied"] == original[label]["applied"], label
            assert stats["checks"]["checksum"]["match"] == original[label]["checks"]["checksum"]["match"]
    # the CLI reads the directory and says OK
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["verify", "--json", str(source)]) == 0
    assert orjson.loads(stdout.getvalue())["symbols"] == captured


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_capture_served_by_the_simulator_replays_like_the_recording(case: VenueCase, captures, tmp_path):
    flow = BOOK_FLOW[case.name]
    replay_venue = capture_venues(captures / case.source)[SIM_NAME[case.name]]
    # the replay, captured again, is the capture: same books, same counts
    again = tmp_path / "again"
    capture_of(case, replay_venue, again)
    assert books(again / case.source) == books(captures / case.source)
    direct = flow_rows(case, case.make_venue(), flow, tmp_path / "direct")
    replayed = flow_rows(case, capture_venues(captures / case.source)[SIM_NAME[case.name]], flow,
                         tmp_path / "replayed")  # fmt: skip
    assert direct and stable(replayed) == stable(direct)
