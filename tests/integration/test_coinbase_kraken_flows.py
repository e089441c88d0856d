"""`dataflows.ticks`, `dataflows.spot_ob` and `dataflows.spot_delta` over Coinbase (recording) and Kraken v2 (synthetic market),
as real `python -m bytewax.run` processes against the simulator, into a temporary Iceberg warehouse.
Rows are compared with the recording read by the standard library and with the synthetic truth."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pyiceberg.exceptions import NoSuchTableError

from cryptoflow.simulator.coinbase import CoinbaseVenue
from cryptoflow.simulator.kraken import KrakenV2SyntheticVenue
from cryptoflow.simulator.server import ExchangeSimulator
from cryptoflow.simulator.synthetic.market import SyntheticMarket
from tests.integration.test_binance_spot_end_to_end import read, run_flow
from tests.support import coinbase_truth
from tests.support.book_truth import apply_level_rows

pytestmark = pytest.mark.integration
KRAKEN_SYMBOLS = ["BTC-USD", "ETH-USD"]


def _env(coinbase: ExchangeSimulator, kraken: ExchangeSimulator, warehouse) -> dict[str, str]:
    return {
        "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__ENABLED": "false",
        "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__ENABLED": "false",
        "CRYPTOFLOW_EXCHANGES__COINBASE__WS_URL": coinbase.ws_url,
        "CRYPTOFLOW_EXCHANGES__COINBASE__REST_URL": coinbase.http_url,
        "CRYPTOFLOW_EXCHANGES__COINBASE__SYMBOLS": "[BTC-USD, ETH-USD]",
        "CRYPTOFLOW_EXCHANGES__KRAKEN__WS_URL": f"{kraken.ws_url}/v2",
        "CRYPTOFLOW_EXCHANGES__KRAKEN__REST_URL": kraken.http_url,
        "CRYPTOFLOW_EXCHANGES__KRAKEN__SYMBOLS": "[BTC/USD, ETH/USD]",
        "CRYPTOFLOW_CONNECTOR__STOP_AT_REPLAY_END": "true",
        "CRYPTOFLOW_CATALOG__TYPE": "sql",
        "CRYPTOFLOW_CATALOG__URI": f"sqlite:///{warehouse / 'catalog.db'}",
        "CRYPTOFLOW_CATALOG__WAREHOUSE": str(warehouse),
    }


def _run(flow: str, tmp_path, extra: dict[str, str] | None = None):
    market = SyntheticMarket(
        KRAKEN_SYMBOLS, depth=30, seed=21, step_us=20_000
    )  # 20 ms of exchange time per change
    kraken_venue = KrakenV2SyntheticVenue(market, messages=600, trade_every=5, start_after_s=2.0)
    with ExchangeSimulator(CoinbaseVenue.from_recording()) as cb, ExchangeSimulator(kraken_venue) as kr:
        env = {**_env(cb, kr, tmp_path / "warehouse"), **(extra or {})}
        run_flow(flow, env)
    return market, env


def test_ticks_rows_equal_coinbase_recording_and_kraken_truth(tmp_path):
    market, env = _run("ticks", tmp_path)
    rows = read(env, "ticks")
    coinbase = {r["trade_id"]: r for r in rows if r["exchange"] == "coinbase"}
    truth = coinbase_truth.trades()
    assert len(coinbase) == len([r for r in rows if r["exchange"] == "coinbase"]) == len(truth) > 0
    for trade_id, t in truth.items():
        row = coinbase[trade_id]
        assert (row["exchange_symbol"], row["price"], row["qty"], row["side"]) == (
            t["product"],
            t["price"],
            t["size"],
            t["side"],
        )
        assert row["symbol"] == t["product"] and row["market"] == "spot"
    kraken = sorted((r for r in rows if r["exchange"] == "kraken"), key=lambda r: int(r["trade_id"]))
    expected = sorted(market.truth.trades, key=lambda t: t.trade_id)
    # the flow subscribed before the generator started: every trade reached it
    assert [(r["symbol"], r["trade_id"], r["price"], r["qty"], r["side"]) for r in kraken] == [
        (t.symbol, str(t.trade_id), Decimal(t.price), Decimal(t.qty), t.taker_side) for t in expected
    ]


@pytest.mark.parametrize("client_loop", ["shared", "worker"])
def test_spot_ob_rows_equal_coinbase_recording_and_kraken_truth(tmp_path, client_loop):
    # worker: the Bytewax worker runs both venues' clients itself while idle (connectors/client_loop.py)
    market, env = _run("spot_ob", tmp_path, {"CRYPTOFLOW_CONNECTOR__CLIENT_LOOP": client_loop})
    rows = read(env, "spot_ob")
    try:
        gaps = read(env, "gaps")
    except NoSuchTableError:
        gaps = []
    assert gaps == []
    coinbase = [r for r in rows if r["exchange"] == "coinbase"]
    kraken = [r for r in rows if r["exchange"] == "kraken"]
    assert {r["symbol"] for r in coinbase} == {"BTC-USD", "ETH-USD"} and {r["symbol"] for r in kraken} == set(
        KRAKEN_SYMBOLS
    )
    # Coinbase: each row is the recording's book after the frame with the row's exchange time
    stamps = coinbase_truth.l2_stamps()
    assert len(set(stamps)) == len(stamps)  # frame times identify frames
    wanted = {(r["exchange_symbol"], _us(r["exchange_ts"])) for r in coinbase}
    books = coinbase_truth.books_at(wanted, depth=2000)
    for r in coinbase:
        bids, asks = books[(r["exchange_symbol"], _us(r["exchange_ts"]))]
        got_b = [(lv["price"], lv["qty"]) for lv in r["bids"]]
        got_a = [(lv["price"], lv["qty"]) for lv in r["asks"]]
        assert got_b == bids[: len(got_b)] and got_a == asks[: len(got_a)]
        # checkpoints: the kept prefix of the 2,000-level cap (deletes inside it shrink it until a resync)
        assert (1900 <= len(got_b) <= 2000) if r["is_checkpoint"] else len(got_b) == 50
        assert not r["verified"]  # Coinbase has no cross-check
    # Kraken: each row is the true book (top of the subscribed depth 10) at the row's exchange time
    for r in kraken:
        truth = market.book_at(r["symbol"], _us(r["exchange_ts"]))
        got_b = [(lv["price"], lv["qty"]) for lv in r["bids"]]
        got_a = [(lv["price"], lv["qty"]) for lv in r["asks"]]
        assert got_b == [(Decimal(p), Decimal(q)) for p, q in truth.bids.top(10)]
        assert got_a == [(Decimal(p), Decimal(q)) for p, q in truth.asks.top(10)]
        assert r["verified"]  # every checksum matched
    assert len(kraken) >= 50


def _us(ts) -> int:
    return int(ts.timestamp()) * 1_000_000 + ts.microsecond


def _rebuild(rows: list[dict], depth: int | None) -> tuple[list, list]:
    """Replay delta rows (in stream order) into a book; `depth` truncates after each message (Kraken)."""
    bids: dict[Decimal, Decimal] = {}
    asks: dict[Decimal, Decimal] = {}
    by_message: dict[int, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["source_offset"]):
        by_message.setdefault(r["source_offset"], []).append(r)
    for message in by_message.values():
        if message[0]["is_snapshot"]:
            bids, asks = {}, {}
        apply_level_rows(bids, asks, message)
        if depth is not None:
            bids = dict(sorted(bids.items(), reverse=True)[:depth])
            asks = dict(sorted(asks.items())[:depth])
    return sorted(bids.items(), reverse=True), sorted(asks.items())


def test_spot_delta_rows_rebuild_the_recording_and_the_truth(tmp_path):
    market, env = _run("spot_delta", tmp_path)
    rows = read(env, "spot_delta")
    coinbase = [r for r in rows if r["exchange"] == "coinbase"]
    # one row per level of every l2 message, counted from the recording with json only
    levels = 0
    with coinbase_truth.COINBASE.open() as handle:
        for line in handle:
            record = json.loads(line)
            if record["t"] == "recv" and '"l2_data"' in record["data"]:
                levels += sum(len(e["updates"]) for e in json.loads(record["data"])["events"])
    assert len(coinbase) == levels
    stamps = coinbase_truth.l2_stamps()
    last = {product: stamp for product, stamp in stamps}
    final = coinbase_truth.books_at(set(last.items()), depth=1_000_000)
    for product, stamp in last.items():
        bids, asks = _rebuild([r for r in coinbase if r["symbol"] == product], None)
        assert (bids, asks) == final[(product, stamp)]
    kraken = [r for r in rows if r["exchange"] == "kraken"]
    for symbol in KRAKEN_SYMBOLS:
        bids, asks = _rebuild([r for r in kraken if r["symbol"] == symbol], 10)
        truth = market.books[symbol]
        assert bids == [(Decimal(p), Decimal(q)) for p, q in truth.bids.top(10)]
        assert asks == [(Decimal(p), Decimal(q)) for p, q in truth.asks.top(10)]
