"""`dataflows.liquidations` and `dataflows.funding` over the synthetic Bybit and OKX venues, as real
`python -m bytewax.run` processes into a temporary Iceberg warehouse: every row equals what the
synthetic market emitted (liquidated position side, price, qty, time; funding rate and settlement time)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptoflow.simulator.server import ExchangeSimulator
from cryptoflow.simulator.synthetic.market import SyntheticMarket
from cryptoflow.simulator.synthetic_venues import BybitSyntheticVenue, OkxSyntheticVenue
from tests.integration.test_binance_spot_end_to_end import read, run_flow

pytestmark = pytest.mark.integration
LINEAR = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
OKX_IDS = ["BTC-USDT", "ETH-USDT-SWAP", "BTC-USD-260925"]


def _run(flow: str, tmp_path):
    linear = SyntheticMarket(LINEAR, depth=20, seed=51, step_us=20_000)
    okx = SyntheticMarket(OKX_IDS, depth=20, seed=52, step_us=20_000)
    plan = {
        "messages": 400,
        "trade_every": 0,
        "liquidation_every": 8,
        "funding_every": 9,
        "start_after_s": 3.0,
    }
    bybit_venue = BybitSyntheticVenue({"linear": linear}, **plan)
    okx_venue = OkxSyntheticVenue(okx, **plan)
    warehouse = tmp_path / "warehouse"
    with ExchangeSimulator(bybit_venue) as by, ExchangeSimulator(okx_venue) as ox:
        env = {
            "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__ENABLED": "false",
            "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__ENABLED": "false",
            "CRYPTOFLOW_EXCHANGES__BYBIT__ENABLED": "true",
            "CRYPTOFLOW_EXCHANGES__BYBIT__WS_URL": by.ws_url,
            "CRYPTOFLOW_EXCHANGES__BYBIT__REST_URL": by.http_url,
            "CRYPTOFLOW_EXCHANGES__BYBIT__SPOT_SYMBOLS": "[]",
            "CRYPTOFLOW_EXCHANGES__BYBIT__LINEAR_SYMBOLS": "["
            + ", ".join(s.replace("-", "") for s in LINEAR)
            + "]",
            "CRYPTOFLOW_EXCHANGES__OKX__ENABLED": "true",
            "CRYPTOFLOW_EXCHANGES__OKX__WS_URL": ox.ws_url,
            "CRYPTOFLOW_EXCHANGES__OKX__REST_URL": ox.http_url,
            "CRYPTOFLOW_EXCHANGES__OKX__SYMBOLS": "[" + ", ".join(OKX_IDS) + "]",
            "CRYPTOFLOW_CONNECTOR__STOP_AT_REPLAY_END": "true",
            "CRYPTOFLOW_CATALOG__TYPE": "sql",
            "CRYPTOFLOW_CATALOG__URI": f"sqlite:///{warehouse / 'catalog.db'}",
            "CRYPTOFLOW_CATALOG__WAREHOUSE": str(warehouse),
        }
        run_flow(flow, env)
    return linear, okx, read(env, flow)


def _us(row, column: str = "exchange_ts") -> int:
    ts = row[column]
    return int(ts.timestamp()) * 1_000_000 + ts.microsecond


def test_liquidation_rows_equal_the_synthetic_truth(tmp_path):
    linear, okx, rows = _run("liquidations", tmp_path)
    for exchange, market in (("bybit", linear), ("okx", okx)):
        got = sorted(
            (r["exchange_symbol"], r["side"], r["price"], r["qty"], _us(r))
            for r in rows
            if r["exchange"] == exchange
        )
        symbol = (lambda s: s.replace("-", "")) if exchange == "bybit" else (lambda s: s)
        want = sorted(
            (symbol(x.symbol), x.position_side, Decimal(x.price), Decimal(x.qty), x.ts_us // 1000 * 1000)
            for x in market.truth.liquidations
        )
        assert got == want and len(want) == len(range(0, 400, 8)), exchange
        assert {side for _, side, *_ in got} == {"long", "short"}
    okx_markets = {(r["exchange_symbol"], r["market"], r["symbol"]) for r in rows if r["exchange"] == "okx"}
    assert okx_markets == {("ETH-USDT-SWAP", "perp", "ETH-USDT"), ("BTC-USD-260925", "future", "BTC-USD")}


def test_funding_rows_equal_the_synthetic_truth(tmp_path):
    linear, okx, rows = _run("funding", tmp_path)
    bybit = sorted(
        (r["exchange_symbol"], r["funding_rate"], r["mark_price"], _us(r, "next_funding_ts"), _us(r))
        for r in rows
        if r["exchange"] == "bybit"
    )
    assert bybit == sorted(
        (
            f.symbol.replace("-", ""),
            Decimal(f.rate),
            Decimal(f.mark_price),
            f.next_funding_us,
            f.ts_us // 1000 * 1000,
        )
        for f in linear.truth.funding
    )
    okx_rows = sorted(
        (r["exchange_symbol"], r["funding_rate"], _us(r, "next_funding_ts"), _us(r))
        for r in rows
        if r["exchange"] == "okx"
    )
    assert okx_rows == sorted(
        (f.symbol, Decimal(f.rate), f.next_funding_us, f.ts_us // 1000 * 1000) for f in okx.truth.funding
    )
    assert {s for s, *_ in okx_rows} == {"ETH-USDT-SWAP"} and len(okx_rows) == len(range(0, 400, 9))
