"""Bybit `/v5/market/instruments-info?category=spot|linear` -> instrument map (cursor-paginated).

`baseCoin`/`quoteCoin` give the normalized symbol; `contractType` gives the market (`LinearPerpetual`
-> perp, `LinearFutures` -> future, spot category -> spot). Spot and linear reuse the same exchange
symbol (`BTCUSDT`), so there is one map per category.
"""

from __future__ import annotations

from urllib.parse import urlencode

import orjson

from connectors.instruments import Instrument
from connectors.parse_errors import ParseError
from cryptoflow.model import Market

CATEGORY_OF_URL_TAIL = {"spot": "spot", "linear": "linear"}
_CONTRACT_MARKET = {"LinearPerpetual": Market.PERP, "InversePerpetual": Market.PERP}


def instruments_url(rest_url: str, category: str, cursor: str | None = None) -> str:
    query = {"category": category, "limit": 1000}
    if cursor:
        query["cursor"] = cursor
    return f"{rest_url}/v5/market/instruments-info?{urlencode(query)}"


def parse_instruments_page(body: bytes | str, category: str) -> tuple[dict[str, Instrument], str | None]:
    """One response page -> (instruments, next cursor or None)."""
    try:
        msg = orjson.loads(body)
        if msg.get("retCode") != 0:
            raise ParseError("server_error", str(msg)[:200])
        result = msg["result"]
        out = {}
        for item in result["list"]:
            if category == "spot":
                market = Market.SPOT
            else:
                market = _CONTRACT_MARKET.get(item.get("contractType", ""), Market.FUTURE)
            out[item["symbol"]] = Instrument(
                item["symbol"], f"{item['baseCoin']}-{item['quoteCoin']}", market
            )
        return out, result.get("nextPageCursor") or None
    except ParseError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ParseError("bad_instruments", repr(exc)) from None
