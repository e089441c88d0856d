"""Coinbase products (`GET /api/v3/brokerage/market/products`) -> product id -> normalized `BASE-QUOTE`,
taken from the product's own base/quote currency ids, not from splitting the id."""

from __future__ import annotations

import orjson

from connectors.parse_errors import ParseError


def parse_products(body: bytes | str) -> dict[str, str]:
    try:
        msg = orjson.loads(body)
        out = {}
        for p in msg["products"]:
            if p.get("product_type", "SPOT") != "SPOT" or p.get("trading_disabled"):
                continue
            out[p["product_id"]] = f"{p['base_currency_id']}-{p['quote_currency_id']}"
        return out
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ParseError("unexpected_shape", f"products: {exc!r}") from None
