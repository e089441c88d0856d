"""Bybit / OKX parser contracts beyond books: trades, funding state, liquidation side mapping,
instrument lists, subscribe-request splitting."""

from __future__ import annotations

import orjson
import pytest

from connectors.bybit.client import chunk_by_budget, split_symbols, topics_for
from connectors.bybit.instruments import parse_instruments_page
from connectors.bybit.parsing import BybitParser
from connectors.okx.instruments import parse_instruments
from connectors.okx.parsing import OkxParser
from connectors.parse_errors import ParseError
from cryptoflow.model import Kind, Liquidation


def _liq(side: str) -> str:
    return orjson.dumps({"topic": "allLiquidation.BTCUSDT", "type": "snapshot", "ts": 1,
                         "data": [{"T": 1700000000000, "s": "BTCUSDT", "S": side, "v": "0.5", "p": "65000.1"}]}).decode()  # fmt: skip


@pytest.mark.parametrize(("side", "position"), [("Buy", "long"), ("Sell", "short")])
def test_bybit_liquidation_side_is_the_liquidated_position(side, position):
    (event,) = BybitParser("perp").parse(_liq(side), 0)
    assert event.kind is Kind.LIQUIDATION and event.payload == Liquidation(position, "65000.1", "0.5")
    assert event.exchange_ts_us == 1700000000000 * 1000


def test_bybit_ticker_delta_keeps_absent_fields():
    p = BybitParser("perp", {"BTCUSDT": "BTC-USDT"})
    snap = {"topic": "tickers.BTCUSDT", "type": "snapshot", "ts": 1, "data": {"symbol": "BTCUSDT",
            "fundingRate": "0.0001", "nextFundingTime": "1700000000000", "markPrice": "10", "indexPrice": "11"}}  # fmt: skip
    delta = {
        "topic": "tickers.BTCUSDT",
        "type": "delta",
        "ts": 2,
        "data": {"symbol": "BTCUSDT", "markPrice": "12"},
    }
    bid_only = {
        "topic": "tickers.BTCUSDT",
        "type": "delta",
        "ts": 3,
        "data": {"symbol": "BTCUSDT", "bid1Price": "9"},
    }
    (first,) = p.parse(orjson.dumps(snap), 0)
    (second,) = p.parse(orjson.dumps(delta), 0)
    assert p.parse(orjson.dumps(bid_only), 0) == []  # nothing about funding changed
    assert first.payload.mark_price == "10" and second.payload.mark_price == "12"
    assert (second.payload.funding_rate, second.payload.next_funding_ts_us, second.payload.index_price) == (
        "0.0001", 1700000000000000, "11")  # fmt: skip
    assert second.symbol == "BTC-USDT" and second.kind is Kind.FUNDING
    assert BybitParser("spot").parse(orjson.dumps(snap), 0) == []  # spot tickers: no funding


def test_bybit_unknown_symbol_is_an_error_once_the_map_is_known():
    with pytest.raises(ParseError) as err:
        BybitParser("spot", {}).parse(_liq("Buy"), 0)
    assert err.value.reason == "unknown_symbol"


@pytest.mark.parametrize(("detail", "position"), [
    ({"posSide": "long", "side": "sell"}, "long"),
    ({"posSide": "short", "side": "buy"}, "short"),
    ({"posSide": "net", "side": "sell"}, "long"),   # net mode: a sell order closes a long
    ({"posSide": "net", "side": "buy"}, "short"),
])  # fmt: skip
def test_okx_liquidation_position_side(detail, position):
    msg = {"arg": {"channel": "liquidation-orders", "instType": "SWAP"}, "data": [
        {"instId": "BTC-USDT-SWAP", "instType": "SWAP", "details": [dict(detail, bkPx="1.5", sz="3", ts="5")]},
        {"instId": "XRP-USDT-SWAP", "instType": "SWAP", "details": [dict(detail, bkPx="1", sz="1", ts="5")]},
    ]}  # fmt: skip
    events = OkxParser(instruments={"BTC-USDT-SWAP": ("perp", "BTC-USDT")}).parse(orjson.dumps(msg), 0)
    assert [(e.exchange_symbol, e.payload) for e in events] == [
        ("BTC-USDT-SWAP", Liquidation(position, "1.5", "3"))
    ]


def test_okx_funding_and_notice():
    p = OkxParser(instruments={"BTC-USDT-SWAP": ("perp", "BTC-USDT")})
    msg = {"arg": {"channel": "funding-rate", "instId": "BTC-USDT-SWAP"}, "data": [{"instId": "BTC-USDT-SWAP",
           "fundingRate": "0.0002", "fundingTime": "1700000000000", "ts": "1699999999000"}]}  # fmt: skip
    (event,) = p.parse(orjson.dumps(msg), 0)
    assert event.kind is Kind.FUNDING and event.payload.funding_rate == "0.0002"
    assert event.payload.next_funding_ts_us == 1700000000000000 and event.exchange_ts_us == 1699999999000000
    assert p.parse('{"event":"notice","code":"64008","msg":"upgrade"}', 0) == []
    assert p.notices[0]["code"] == "64008"


def test_instrument_lists():
    bybit = {"retCode": 0, "result": {"list": [
        {"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "contractType": "LinearPerpetual"},
        {"symbol": "BTCUSDT-26DEC25", "baseCoin": "BTC", "quoteCoin": "USDT", "contractType": "LinearFutures"},
    ], "nextPageCursor": "abc"}}  # fmt: skip
    found, cursor = parse_instruments_page(orjson.dumps(bybit), "linear")
    assert cursor == "abc"
    assert [(i.symbol, i.market) for i in found.values()] == [("BTC-USDT", "perp"), ("BTC-USDT", "future")]
    okx = {"code": "0", "data": [{"instId": "BTC-USD-SWAP", "uly": "BTC-USD", "instFamily": "BTC-USD"}]}
    assert parse_instruments(orjson.dumps(okx), "SWAP")["BTC-USD-SWAP"].symbol == "BTC-USD"
    with pytest.raises(ParseError):
        parse_instruments(b'{"code":"50011","msg":"rate limit"}', "SPOT")


def test_subscribe_budgets():
    topics = topics_for(["BTCUSDT"] * 7, {"depth", "trades"}, "spot", 200)
    assert [len(g) for g in chunk_by_budget(topics, 10)] == [10, 4]
    symbols = [f"S{i:05d}USDT" for i in range(2000)]
    groups = split_symbols(symbols, {"depth", "trades", "funding", "liquidations"}, "linear", 200, 21_000)
    assert sum(len(g) for g in groups) == 2000 and len(groups) > 1
    for g in groups:
        assert (
            sum(len(t) for t in topics_for(g, {"depth", "trades", "funding", "liquidations"}, "linear", 200))
            <= 21_000
        )
