"""A subscribe venue's instrument REST response rebuilt from the instrument map its client journaled.

`cryptoflow capture` journals what the client decoded from the venue's instrument endpoint (exchange
symbol -> (market, BASE-QUOTE)), not the response body. A replay of the capture needs that endpoint
again, so the map is written back in the venue's own response shape: only the fields the clients read.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from cryptoflow.model import Market

InstrumentMap = dict[str, tuple[str, str]]  # connectors.subscribe_client.InstrumentMap


def bybit_instruments(category: str, instruments: InstrumentMap) -> bytes:
    """`/v5/market/instruments-info?category=<category>` (one page)."""
    items = []
    for symbol, (market, pair) in sorted(instruments.items()):
        base, quote = pair.split("-", 1)
        item = {"symbol": symbol, "baseCoin": base, "quoteCoin": quote, "status": "Trading"}
        if category != "spot":
            item["contractType"] = "LinearPerpetual" if market == Market.PERP else "LinearFutures"
        items.append(item)
    result = {"category": category, "list": items, "nextPageCursor": ""}
    return orjson.dumps({"retCode": 0, "retMsg": "OK", "result": result})


def coinbase_products(_: str, instruments: InstrumentMap) -> bytes:
    """`/api/v3/brokerage/market/products`."""
    products = []
    for product_id, (_market, pair) in sorted(instruments.items()):
        base, quote = pair.split("-", 1)
        products.append({"product_id": product_id, "base_currency_id": base, "quote_currency_id": quote,
                         "product_type": "SPOT", "trading_disabled": False})  # fmt: skip
    return orjson.dumps({"products": products, "num_products": len(products)})


def kraken_asset_pairs(_: str, instruments: InstrumentMap) -> bytes:
    """`/0/public/AssetPairs` keyed by altname, `wsname` = the v2 symbol the client subscribed."""
    result = {}
    for symbol, (_market, pair) in sorted(instruments.items()):
        base, quote = pair.split("-", 1)
        result[symbol.replace("/", "")] = {"altname": symbol.replace("/", ""), "wsname": symbol, "base": base,
                                           "quote": quote, "status": "online"}  # fmt: skip
    return orjson.dumps({"error": [], "result": result})


# journal source -> (instrument endpoint URL for a journal key, body encoder)
ENCODERS: dict[str, tuple[Callable[[str], str], Callable[[str, InstrumentMap], bytes]]] = {
    "bybit": (
        lambda key: f"https://api.bybit.com/v5/market/instruments-info?category={key}",
        bybit_instruments,
    ),
    "coinbase_spot": (
        lambda _: "https://api.coinbase.com/api/v3/brokerage/market/products",
        coinbase_products,
    ),
    "kraken_spot": (lambda _: "https://api.kraken.com/0/public/AssetPairs", kraken_asset_pairs),
}
