"""Coinbase/Kraken pieces without sockets: trade parsing (side mapping), instrument maps, rate budgets."""

from __future__ import annotations

import json

import pytest

from connectors.coinbase.instruments import parse_products
from connectors.coinbase.parsing import CoinbaseParser
from connectors.kraken.instruments import parse_asset_pairs
from connectors.kraken.parsing import KrakenV2Parser
from connectors.parse_errors import ParseError
from connectors.ratelimit import Budget
from cryptoflow.model import Kind
from tests.support.coinbase_truth import COINBASE


def _cb(seq: int, channel: str, events: list) -> str:
    return json.dumps({"channel": channel, "client_id": "", "timestamp": "2026-08-09T21:05:48.228568804Z",
                       "sequence_num": seq, "events": events})  # fmt: skip


def test_coinbase_market_trades_maker_side_becomes_taker_side():
    trades = [
        {"trade_id": "1", "product_id": "BTC-USD", "price": "65083.67", "size": "0.002186",
         "time": "2026-08-09T21:05:42.514318Z", "side": "SELL"},
        {"trade_id": "2", "product_id": "BTC-USD", "price": "65083.66", "size": "0.10",
         "time": "2026-08-09T21:05:42.514319Z", "side": "BUY"},
    ]  # fmt: skip
    events = CoinbaseParser().parse(_cb(0, "market_trades", [{"type": "snapshot", "trades": trades}]), 1)
    assert [e.kind for e in events] == [Kind.TRADE, Kind.TRADE]
    assert [e.payload for e in events] == [
        ("1", "65083.67", "0.002186", "buy"),
        ("2", "65083.66", "0.10", "sell"),
    ]
    assert events[0].exchange_ts_us == 1786309542514318


def test_coinbase_trade_with_an_unknown_side_is_a_parse_error():
    bad = [{"trade_id": "1", "product_id": "BTC-USD", "price": "1", "size": "1", "time": "2026-08-09T21:05:42Z",
            "side": "UNKNOWN"}]  # fmt: skip
    with pytest.raises(ParseError) as err:
        CoinbaseParser().parse(_cb(0, "market_trades", [{"type": "update", "trades": bad}]), 1)
    assert err.value.reason == "unexpected_shape"


def test_kraken_v2_trade_keeps_literal_numbers_and_taker_side():
    frame = ('{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell","price":65000.10,'
             '"qty":0.01000000,"ord_type":"market","trade_id":42,"timestamp":"2026-08-09T21:05:42.514318Z"}]}')  # fmt: skip
    (event,) = KrakenV2Parser().parse(frame, 1)
    assert event.kind is Kind.TRADE and event.symbol == "BTC-USD" and event.exchange_symbol == "BTC/USD"
    assert event.payload == ("42", "65000.10", "0.01000000", "sell")


def test_coinbase_products_from_the_recorded_body():
    for line in COINBASE.open():
        record = json.loads(line)
        if record["t"] == "http":
            body = record["data"]
            break
    products = parse_products(body)
    expected = {p["product_id"]: f'{p["base_currency_id"]}-{p["quote_currency_id"]}'
                for p in json.loads(body)["products"] if p["product_type"] == "SPOT" and not p["trading_disabled"]}  # fmt: skip
    assert products == expected and products["BTC-USD"] == "BTC-USD"


def test_kraken_asset_pairs_map_legacy_codes_to_v2_names():
    body = json.dumps({"error": [], "result": {
        "XXBTZUSD": {"altname": "XBTUSD", "wsname": "XBT/USD"},
        "XDGUSD": {"altname": "XDGUSD", "wsname": "XDG/USD"},
        "ALGOUSD": {"altname": "ALGOUSD", "wsname": "ALGO/USD"},
        "DARK": {"altname": "X.d"},  # dark-pool pairs have no wsname
    }})  # fmt: skip
    assert parse_asset_pairs(body) == {"BTC/USD": "BTC-USD", "DOGE/USD": "DOGE-USD", "ALGO/USD": "ALGO-USD"}
    with pytest.raises(ParseError):
        parse_asset_pairs('{"error":["EGeneral:Too many requests"]}')


def test_budget_allows_limit_per_window_then_says_how_long_to_wait():
    budget = Budget(3, 10.0)
    assert [budget.try_acquire(now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert budget.try_acquire(now=101.0) == pytest.approx(9.0)
    assert budget.try_acquire(now=110.0) == 0.0  # the first event left the window


@pytest.mark.parametrize("stream", ["ticks", "spot_delta", "spot_ob"])
def test_prod_examples_load_and_point_at_the_real_exchanges(stream):
    from connectors.registry import offered, sources_for
    from cryptoflow.config import load_settings
    from cryptoflow.paths import REPO_ROOT

    settings = load_settings(REPO_ROOT / "configs" / "prod" / f"{stream}.yaml", environ={})
    ex = settings.exchanges
    assert ex.coinbase.ws_url == "wss://advanced-trade-ws.coinbase.com"
    assert ex.kraken.ws_url == "wss://ws.kraken.com/v2" and ex.kraken.rest_url == "https://api.kraken.com"
    assert ex.binance.spot.ws_url.startswith("wss://stream.binance.com")
    # Coinbase and Kraken offer the stream and are configured in the example
    assert {"coinbase_spot", "kraken_spot"} <= set(offered(stream))
    names = [name for name, _ in sources_for(settings, stream)]
    assert "coinbase_spot" in names and "kraken_spot" in names


def test_a_bad_frame_is_counted_and_dropped_and_the_client_goes_on():
    import queue

    from connectors.kraken.client import KrakenClient
    from cryptoflow import metrics
    from cryptoflow.config import ConnectorConfig, KrakenConfig

    cfg = KrakenConfig(symbols=["BTC/USD"])
    out: queue.Queue = queue.Queue()
    client = KrakenClient(cfg, ConnectorConfig(), ["BTC/USD"], {"book", "trade"}, 3, out)
    client.parser = client.new_parser()
    client.instruments = {"BTC/USD": "BTC-USD"}
    before = metrics.BAD_FRAMES.labels("kraken", "malformed_json")._value.get()
    client._on_frame("{not json")
    assert metrics.BAD_FRAMES.labels("kraken", "malformed_json")._value.get() == before + 1
    assert out.empty()
    unknown_before = metrics.UNKNOWN_SYMBOL.labels("kraken")._value.get()
    client._on_frame('{"channel":"trade","type":"update","data":[{"symbol":"ETH/USD","side":"buy","price":1.0,'
                     '"qty":1.0,"ord_type":"limit","trade_id":1,"timestamp":"2026-08-09T21:05:42Z"}]}')  # fmt: skip
    assert metrics.UNKNOWN_SYMBOL.labels("kraken")._value.get() == unknown_before + 1 and out.empty()
    client._on_frame('{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":1.50,'
                     '"qty":2.0,"ord_type":"limit","trade_id":7,"timestamp":"2026-08-09T21:05:42Z"}]}')  # fmt: skip
    event = out.get_nowait()
    assert (event.symbol, event.shard, event.payload) == ("BTC-USD", 3, ("7", "1.50", "2.0", "buy"))


def test_coinbase_venue_replays_a_capture_like_the_cryptofeed_recording(tmp_path):
    """A live session written in CryptoFlow's capture format replays with no code change."""
    from connectors.recordings.capture import CaptureWriter
    from connectors.recordings.cryptofeed_v3 import read_cryptofeed_v3
    from cryptoflow.simulator.coinbase import CoinbaseVenue

    capture = tmp_path / "coinbase.capture.jsonl"
    with capture.open("w") as out:
        CaptureWriter(out, "coinbase", 0).records(read_cryptofeed_v3(COINBASE))
    original, replayed = CoinbaseVenue.from_recording(COINBASE), CoinbaseVenue.from_recording(capture)
    assert [(f.channel, f.products, f.text) for f in replayed.frames] == [
        (f.channel, f.products, f.text) for f in original.frames
    ]
    assert replayed.products_body == original.products_body and len(replayed.frames) == 1025
