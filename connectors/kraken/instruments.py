"""Kraken pairs from REST `GET /0/public/AssetPairs`: v2 symbol (`BTC/USD`, BTC not XBT) -> normalized
`BASE-QUOTE`. The v2 name is the pair's `wsname` with Kraken's legacy asset codes mapped (XBT -> BTC,
XDG -> DOGE), which is what the v2 `instrument` channel reports too."""

from __future__ import annotations

import orjson

from connectors.kraken.parsing import normalize_pair
from connectors.parse_errors import ParseError


def parse_asset_pairs(body: bytes | str) -> dict[str, str]:
    try:
        msg = orjson.loads(body)
        if msg.get("error"):
            raise ParseError("server_error", str(msg["error"])[:200])
        out = {}
        for pair in msg["result"].values():
            wsname = pair.get("wsname")
            if not wsname:
                continue
            symbol = normalize_pair(wsname)
            out[symbol.replace("-", "/")] = symbol
        return out
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ParseError("unexpected_shape", f"AssetPairs: {exc!r}") from None
