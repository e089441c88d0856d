"""Binance USD-M futures, as the simulator serves it: the USD-M recording's frames behind the 2026 URL
split, its REST depth snapshots (with `E`/`T`) and an instrument list with `contractType`:

  WS   /public/stream[?streams=...], /public/ws[/...]   `@depth*` and `@bookTicker` only
  WS   /market/stream[?streams=...], /market/ws[/...]   every other stream (aggTrade, markPrice, forceOrder, kline)
  WS   /stream, /ws                                      legacy URL: every stream (the real one went quiet
                                                         on 2026-04-23; kept so pre-split captures replay)
  REST /fapi/v1/depth?symbol=&limit=, /fapi/v1/exchangeInfo, /fapi/v1/ping

Subscribing a stream on the wrong endpoint is acknowledged but delivers nothing, as on the exchange.
"""

from __future__ import annotations

from cryptoflow import paths
from cryptoflow.simulator.binance_spot import BinanceSpotVenue

PUBLIC, MARKET, LEGACY = "/public", "/market", ""


def is_public_stream(stream: str) -> bool:
    """Book data (`<sym>@depth*`, `<sym>@bookTicker`) is served on `/public` since the 2026 split."""
    name = stream.split("@", 1)[1] if "@" in stream else stream
    return name.startswith(("depth", "bookTicker"))


class BinanceUsdmVenue(BinanceSpotVenue):
    name = "binance-usdm"
    rest_prefix = "/fapi/v1"
    endpoints = {PUBLIC: None, MARKET: None, LEGACY: None}

    def serves(self, prefix: str, stream: str) -> bool:
        if prefix == PUBLIC:
            return is_public_stream(stream)
        if prefix == MARKET:
            return not is_public_stream(stream)
        return True

    default_recording = (paths.BINANCE_USDM_WS, paths.BINANCE_USDM_HTTP, paths.BINANCE_USDM_INSTRUMENTS)

    def _exchange_info(self, query: dict[str, list[str]]):  # type: ignore[override]
        # USD-M exchangeInfo takes no symbol filter: it always lists every contract.
        return super()._exchange_info({})
