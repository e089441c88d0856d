"""Every `configs/prod/<stream>.yaml` is a complete production example: it loads through the config
model, points at the real exchange URLs, configures every venue the stream registry offers the stream
from, and enables no venue that does not offer it."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.bybit.source import STREAMS as BYBIT_STREAMS
from connectors.okx.instruments import INST_TYPES, inst_type_of
from connectors.okx.source import STREAMS as OKX_STREAMS
from connectors.registry import STREAMS, offered, sources_for
from cryptoflow.config import Settings, load_settings
from cryptoflow.paths import REPO_ROOT

PROD = sorted((REPO_ROOT / "configs" / "prod").glob("*.yaml"))


def _configured(settings: Settings) -> dict[str, bool]:
    """Source name -> whether its config section is enabled and lists symbols."""
    ex = settings.exchanges
    return {
        "binance_spot": ex.binance.spot.enabled and bool(ex.binance.spot.symbols),
        "binance_usdm": ex.binance.usdm.enabled and bool(ex.binance.usdm.symbols),
        "bybit": ex.bybit.enabled and bool(ex.bybit.spot_symbols or ex.bybit.linear_symbols),
        "okx": ex.okx.enabled and bool(ex.okx.symbols),
        "coinbase_spot": ex.coinbase.enabled and bool(ex.coinbase.symbols),
        "kraken_spot": ex.kraken.enabled and bool(ex.kraken.symbols),
    }


def test_there_is_one_example_per_stream():
    assert sorted(p.stem for p in PROD) == sorted(STREAMS)


@pytest.mark.parametrize("path", PROD, ids=lambda p: p.stem)
def test_prod_example_loads_and_every_enabled_venue_offers_the_stream(path: Path):
    stream = path.stem
    settings = load_settings(path, environ={})
    configured = _configured(settings)
    assert set(configured) >= set(offered(stream))  # this test knows every registered source
    enabled = {name for name, on in configured.items() if on}
    assert enabled == set(offered(stream))  # every venue offering it is configured, no other one
    assert sorted(name for name, _ in sources_for(settings, stream)) == sorted(enabled)


@pytest.mark.parametrize("path", PROD, ids=lambda p: p.stem)
def test_prod_example_points_at_the_real_exchanges(path: Path):
    ex = load_settings(path, environ={}).exchanges
    urls = {
        "binance_spot": (ex.binance.spot.ws_url, ex.binance.spot.rest_url),
        "binance_usdm": (ex.binance.usdm.ws_url, ex.binance.usdm.rest_url),
        "bybit": (ex.bybit.ws_url, ex.bybit.rest_url),
        "okx": (ex.okx.ws_url, ex.okx.rest_url),
        "coinbase_spot": (ex.coinbase.ws_url, ex.coinbase.rest_url),
        "kraken_spot": (ex.kraken.ws_url, ex.kraken.rest_url),
    }
    real = {
        "binance_spot": ("wss://stream.binance.com:9443", "https://api.binance.com"),
        "binance_usdm": ("wss://fstream.binance.com", "https://fapi.binance.com"),
        "bybit": ("wss://stream.bybit.com", "https://api.bybit.com"),  # + /v5/public/spot|linear
        "okx": ("wss://ws.okx.com:8443", "https://www.okx.com"),  # + /ws/v5/public
        "coinbase_spot": ("wss://advanced-trade-ws.coinbase.com", "https://api.coinbase.com"),
        "kraken_spot": ("wss://ws.kraken.com/v2", "https://api.kraken.com"),
    }
    for name in offered(path.stem):
        assert urls[name] == real[name], name


@pytest.mark.parametrize("path", PROD, ids=lambda p: p.stem)
def test_bybit_and_okx_examples_list_symbols_the_stream_reads(path: Path):
    """E.g. funding reads only OKX SWAPs and Bybit linear symbols: the example must list some."""
    stream = path.stem
    ex = load_settings(path, environ={}).exchanges
    for category, _ in BYBIT_STREAMS[stream]:
        assert ex.bybit.spot_symbols if category == "spot" else ex.bybit.linear_symbols, category
    markets, _ = OKX_STREAMS[stream]
    listed = {INST_TYPES[inst_type_of(i)] for i in ex.okx.symbols}
    assert listed <= markets, f"{stream}: OKX instruments of markets the stream does not read"
    assert listed, stream
