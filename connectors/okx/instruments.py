"""OKX `/api/v5/public/instruments?instType=SPOT|SWAP|FUTURES` -> instrument map.

Spot: `baseCcy-quoteCcy`. SWAP/FUTURES: the underlying `uly` (e.g. `BTC-USD` for the inverse
`BTC-USD-SWAP`, `BTC-USDT` for the linear one), falling back to `instFamily`. Market: SPOT spot, SWAP
perp, FUTURES future.
"""

from __future__ import annotations

from urllib.parse import urlencode

import orjson

from connectors.instruments import Instrument
from connectors.parse_errors import ParseError
from cryptoflow.model import Market

INST_TYPES = {"SPOT": Market.SPOT, "SWAP": Market.PERP, "FUTURES": Market.FUTURE}


def instruments_url(rest_url: str, inst_type: str) -> str:
    return f"{rest_url}/api/v5/public/instruments?{urlencode({'instType': inst_type})}"


def parse_instruments(body: bytes | str, inst_type: str) -> dict[str, Instrument]:
    try:
        msg = orjson.loads(body)
        if str(msg.get("code")) != "0":
            raise ParseError("server_error", str(msg)[:200])
        out = {}
        for item in msg["data"]:
            if inst_type == "SPOT":
                symbol = f"{item['baseCcy']}-{item['quoteCcy']}"
            else:
                symbol = item.get("uly") or item["instFamily"]
            out[item["instId"]] = Instrument(item["instId"], symbol, INST_TYPES[inst_type])
        return out
    except ParseError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ParseError("bad_instruments", repr(exc)) from None


def inst_type_of(inst_id: str) -> str:
    """Which instrument list to ask for an id we are configured with (only to pick the REST query;
    the market itself comes from the list)."""
    parts = inst_id.split("-")
    if parts[-1] == "SWAP":
        return "SWAP"
    if len(parts) == 3 and parts[2].isdigit():
        return "FUTURES"
    return "SPOT"
