"""Binance USD-M end to end over real sockets: the simulator replays the USD-M recording behind the 2026
URL split (`/public` for depth + bookTicker, `/market` for aggTrade), the client subscribes with SUBSCRIBE
messages, `python -m bytewax.run` writes the tables; every row is checked against ground truth read
straight from the recording with the standard library."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from pyiceberg.exceptions import NoSuchTableError

from connectors.iceberg.catalog import load_catalog
from cryptoflow.config import load_settings
from cryptoflow.simulator.server import ExchangeSimulator
from tests.support import book_truth as truth
from tests.support.recording_truth import (
    USDM_HTTP,
    binance_snapshots,
    binance_spot_trades,
    binance_usdm_expected_level_values,
    binance_usdm_trades,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
USDM_SYMBOLS = "[SUSHIUSDT, AKROUSDT, KEEPUSDT, CTKUSDT]"


def usdm_env(
    sim: ExchangeSimulator, warehouse: Path, spot: ExchangeSimulator | None = None
) -> dict[str, str]:
    env = {
        "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__ENABLED": "true",
        "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__SYMBOLS": USDM_SYMBOLS,
        "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__WS_URL": sim.ws_url,
        "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__REST_URL": sim.http_url,
        "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__ENABLED": "false",
        "CRYPTOFLOW_CONNECTOR__STOP_AT_REPLAY_END": "true",
        "CRYPTOFLOW_CATALOG__TYPE": "sql",
        "CRYPTOFLOW_CATALOG__URI": f"sqlite:///{warehouse / 'catalog.db'}",
        "CRYPTOFLOW_CATALOG__WAREHOUSE": str(warehouse),
    }
    if spot is not None:
        env["CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__ENABLED"] = "true"
        env["CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__WS_URL"] = spot.ws_url
        env["CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__REST_URL"] = spot.http_url
    return env


def with_journal(env: dict[str, str], directory: Path) -> dict[str, str]:
    """The same run with the exactly-once journal (connector -> journal -> decoder -> flow)."""
    return {**env, "CRYPTOFLOW_JOURNAL__ENABLED": "true", "CRYPTOFLOW_JOURNAL__DIR": str(directory)}


def run_flow(name: str, env: dict[str, str], workers: int = 1) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bytewax.run", f"dataflows.{name}", "-w", str(workers)],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def read(env: dict[str, str], table: str) -> list[dict]:
    settings = load_settings(environ={**os.environ, **env})
    catalog = load_catalog(settings.catalog)
    try:
        return catalog.load_table(("cryptoflow", table)).scan().to_arrow().to_pylist()
    except NoSuchTableError:  # the sink creates a table with its first row
        return []


def assert_futures_delta_equals_recording(rows: list[dict]) -> None:
    got = Counter((r["exchange_symbol"], r["side"], r["price"], r["qty"], r["is_snapshot"]) for r in rows)
    expected = binance_usdm_expected_level_values()
    assert sum(expected.values()) > 0
    assert got == expected  # nothing lost, nothing repeated, exact decimals
    snapshots = binance_snapshots(USDM_HTTP)
    for symbol, snap in snapshots.items():
        mine = [r for r in rows if r["exchange_symbol"] == symbol]
        assert {r["seq"] for r in mine if r["is_snapshot"]} == {snap["lastUpdateId"]}  # one sync, no resync
        diffs = sorted({(r["first_seq"], r["seq"], r["prev_seq"]) for r in mine if not r["is_snapshot"]},
                       key=lambda d: d[1])  # fmt: skip
        assert diffs[0][0] <= snap["lastUpdateId"] <= diffs[0][1]  # U <= lastUpdateId <= u
        assert all(nxt[2] == prev[1] for prev, nxt in itertools.pairwise(diffs))  # pu == previous u
        assert {r["market"] for r in mine} == {"perp"} and {r["exchange"] for r in mine} == {"binance"}
        assert {r["symbol"] for r in mine} == {symbol.removesuffix("USDT") + "-USDT"}


def assert_rows_in_seq_order_rebuild_the_books(rows: list[dict]) -> None:
    """The README's way to rebuild a book from a delta table: one symbol's rows by `seq`, the snapshot's
    rows first where a diff shares its `seq`; a snapshot replaces the book, a diff level sets a price's
    quantity (0 removes it). Not by `exchange_ts`: a USD-M snapshot's time can follow the first diff's."""
    snapshot_after_a_diff = False
    for symbol in {r["exchange_symbol"] for r in rows}:
        mine = sorted(
            (r for r in rows if r["exchange_symbol"] == symbol),
            key=lambda r: (r["seq"], not r["is_snapshot"]),
        )
        book = truth.NaiveBook()
        for (_, is_snapshot), levels in itertools.groupby(mine, key=lambda r: (r["seq"], r["is_snapshot"])):
            group = list(levels)
            if is_snapshot:
                book = truth.NaiveBook()
            bids = [(r["price"], r["qty"]) for r in group if r["side"] == "bid"]
            asks = [(r["price"], r["qty"]) for r in group if r["side"] == "ask"]
            book.apply(bids, asks)
        reference = truth.binance_stream(truth.BINANCE_USDM, symbol, usdm=True).at_id(mine[-1]["seq"])
        assert (book.bids, book.asks) == (reference.bids, reference.asks), symbol
        snapshot_ts = min(r["exchange_ts"] for r in mine if r["is_snapshot"])
        snapshot_after_a_diff |= any(r["exchange_ts"] < snapshot_ts for r in mine if not r["is_snapshot"])
    assert snapshot_after_a_diff  # the recording has the case the README warns of


def test_futures_delta_rows_equal_the_recordings_applied_levels(binance_usdm_simulator, tmp_path):
    env = usdm_env(binance_usdm_simulator, tmp_path / "warehouse")
    run_flow("futures_delta", env)
    rows = read(env, "futures_delta")
    assert_futures_delta_equals_recording(rows)
    assert_rows_in_seq_order_rebuild_the_books(rows)
    assert read(env, "gaps") == []
    # depth on /public (the 2026 split), never the legacy URL; one cached exchangeInfo for all shards
    stats = binance_usdm_simulator.stats
    assert set(stats.ws_paths) == {"/public/stream"}
    assert stats.rest_requests["/fapi/v1/exchangeInfo"] == 1 and stats.rest_requests["/fapi/v1/depth"] == 4


def test_futures_ob_rows_equal_the_reference_book_and_are_verified(binance_usdm_simulator, tmp_path):
    env = usdm_env(binance_usdm_simulator, tmp_path / "warehouse")
    run_flow("futures_ob", env)
    rows = read(env, "futures_ob")
    expected = truth.binance_applied_counts(truth.BINANCE_USDM, usdm=True)
    assert {r["exchange_symbol"] for r in rows} == set(expected)
    streams = {s: truth.binance_stream(truth.BINANCE_USDM, s, usdm=True) for s in expected}
    for row in rows:
        ref = streams[row["exchange_symbol"]].at_id(row["seq"])
        bids = [(lv["price"], lv["qty"]) for lv in row["bids"]]
        asks = [(lv["price"], lv["qty"]) for lv in row["asks"]]
        assert bids == ref.top_bids(len(bids)) and asks == ref.top_asks(len(asks))
        if row["is_checkpoint"]:
            assert len(bids) == len(ref.bids) and len(asks) == len(ref.asks)
        assert row["best_bid"] < row["best_ask"] and row["market"] == "perp"
    # bookTicker (on /public, same connection as depth) cross-checked every symbol's book
    for symbol in expected:
        assert any(r["verified"] for r in rows if r["exchange_symbol"] == symbol)
    assert read(env, "gaps") == []


def test_ticks_cover_every_configured_binance_market(
    binance_usdm_simulator, binance_spot_simulator, tmp_path
):
    env = usdm_env(binance_usdm_simulator, tmp_path / "warehouse", spot=binance_spot_simulator)
    run_flow("ticks", env)
    rows = read(env, "ticks")
    want = {("spot", t["s"], str(t["a"])): t for t in binance_spot_trades()}
    want |= {("perp", t["s"], str(t["a"])): t for t in binance_usdm_trades()}
    got = {(r["market"], r["exchange_symbol"], r["trade_id"]): r for r in rows}
    assert set(binance_usdm_simulator.stats.ws_paths) == {"/market/stream"}  # aggTrade lives on /market
    assert len(rows) == len(got) == len(want) > 0 and got.keys() == want.keys()
    for key, t in want.items():
        assert got[key]["price"] == Decimal(t["p"]) and got[key]["qty"] == Decimal(t["q"])
        assert got[key]["side"] == ("sell" if t["m"] else "buy")


@pytest.mark.parametrize("journal", [False, True], ids=["queue", "journal"])
def test_rotation_every_two_seconds_loses_and_duplicates_nothing(binance_usdm_venue, tmp_path, journal):
    """A live-like replay (one shared timeline, a new connection joins where it stands) at 5x speed
    (~6 s) with connections rotated every 2 s: the book must continue across every hand-over without a
    resync, and the rows must equal the recording exactly. With the journal, the journal holds each
    depth update once (the hand-over's repeats are filtered before the journal)."""
    with ExchangeSimulator(binance_usdm_venue, speed=5.0, clock="shared") as sim:
        env = usdm_env(sim, tmp_path / "warehouse")
        if journal:
            env = with_journal(env, tmp_path / "journal")
        env["CRYPTOFLOW_EXCHANGES__BINANCE__USDM__ROTATE_AFTER_S"] = "2"
        env["CRYPTOFLOW_EXCHANGES__BINANCE__USDM__ROTATION_OVERLAP_MAX_S"] = "2"
        run_flow("futures_delta", env)
        connections = sum(sim.stats.connections_by_ip.values())
    assert connections >= 3  # the first connection and at least two rotations
    assert_futures_delta_equals_recording(read(env, "futures_delta"))
    assert read(env, "gaps") == []
    if journal:
        from connectors.journal import JournalReader, RecordKind

        parts = sorted((tmp_path / "journal" / "futures_delta" / "binance_usdm").iterdir())
        frames = [
            json.loads(r.payload)["data"]
            for part in parts
            for r in JournalReader(part).read(1_000_000)
            if r.kind is RecordKind.WS_FRAME
        ]
        ids = Counter((f["s"], f["u"]) for f in frames)
        assert ids and max(ids.values()) == 1


# ------------------------------------------------------------------ liquidations and funding
# No public recording has forceOrder or markPriceUpdate frames, so these tests add generated ones (valid
# USD-M payloads, on a 1 s grid) to the recording's timeline; the expected rows are computed here from
# the generated dicts, not through CryptoFlow's parser.
def generated_derivatives(start_ms: int = 1626992741000, seconds: int = 20) -> tuple[list[dict], list[dict]]:
    marks, liqs = [], []
    for i in range(seconds):
        for n, symbol in enumerate(("SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT")):
            e = start_ms + i * 1000 + n
            marks.append({"e": "markPriceUpdate", "E": e, "s": symbol, "p": f"{7 + i / 100:.4f}",
                          "i": f"{7 + i / 99:.8f}", "P": "7.00000000", "r": f"0.000{n}{i:02d}",
                          "T": 1627000000000})  # fmt: skip
            if (i + n) % 3 == 0:  # at most one per symbol per second, as Binance pushes them
                liqs.append({"e": "forceOrder", "E": e + 5, "o": {"s": symbol, "S": "SELL" if i % 2 else "BUY",
                             "o": "LIMIT", "f": "IOC", "q": f"{i + 1}", "p": f"{7 - i / 100:.3f}", "ap": "7.001",
                             "X": "FILLED", "l": f"{i + 1}", "z": f"{i + 1}", "T": e}})  # fmt: skip
    return marks, liqs


@pytest.fixture
def derivatives_simulator(binance_usdm_venue):
    from cryptoflow.simulator.binance_spot import RecordedFrame
    from cryptoflow.simulator.binance_usdm import BinanceUsdmVenue

    marks, liqs = generated_derivatives()
    frames = list(binance_usdm_venue.frames)
    for data in marks:
        stream = f"{data['s'].lower()}@markPrice@1s"
        frames.append(RecordedFrame(data["E"] / 1000, stream, json.dumps({"stream": stream, "data": data})))
    for data in liqs:
        stream = f"{data['o']['s'].lower()}@forceOrder"
        frames.append(RecordedFrame(data["E"] / 1000, stream, json.dumps({"stream": stream, "data": data})))
    frames.sort(key=lambda f: f.ts)
    venue = BinanceUsdmVenue(
        frames, binance_usdm_venue.snapshots, list(binance_usdm_venue.instruments.values())
    )
    with ExchangeSimulator(venue, speed=0.0) as sim:
        yield sim, marks, liqs


@pytest.mark.parametrize("journal", [False, True], ids=["queue", "journal"])
def test_liquidations_side_is_the_liquidated_position(derivatives_simulator, tmp_path, journal):
    sim, _, liqs = derivatives_simulator
    env = usdm_env(sim, tmp_path / "warehouse")
    if journal:
        env = with_journal(env, tmp_path / "journal")
    run_flow("liquidations", env)
    rows = read(env, "liquidations")
    got = {(r["exchange_symbol"], int(r["exchange_ts"].timestamp() * 1000 + 0.5)): r for r in rows}
    assert len(rows) == len(got) == len(liqs) > 0
    for liq in liqs:
        order = liq["o"]
        row = got[(order["s"], order["T"])]
        assert row["side"] == ("long" if order["S"] == "SELL" else "short")  # a SELL order closes a long
        assert row["price"] == Decimal(order["p"]) and row["qty"] == Decimal(order["q"])
        assert row["avg_price"] == Decimal(order["ap"]) and row["filled_qty"] == Decimal(order["z"])
        assert row["market"] == "perp" and row["status"] == "FILLED"
    assert set(sim.stats.ws_paths) == {"/market/stream"}


@pytest.mark.parametrize("journal", [False, True], ids=["queue", "journal"])
def test_funding_rows_carry_rate_next_time_mark_and_index(derivatives_simulator, tmp_path, journal):
    sim, marks, _ = derivatives_simulator
    env = usdm_env(sim, tmp_path / "warehouse")
    if journal:
        env = with_journal(env, tmp_path / "journal")
    run_flow("funding", env)
    rows = read(env, "funding")
    got = {(r["exchange_symbol"], int(r["exchange_ts"].timestamp() * 1000 + 0.5)): r for r in rows}
    assert len(rows) == len(got) == len(marks) > 0
    for mark in marks:
        row = got[(mark["s"], mark["E"])]
        assert row["funding_rate"] == Decimal(mark["r"]) and row["mark_price"] == Decimal(mark["p"])
        assert row["index_price"] == Decimal(mark["i"])
        assert row["estimated_settle_price"] == Decimal(mark["P"])
        assert int(row["next_funding_ts"].timestamp() * 1000) == mark["T"]
