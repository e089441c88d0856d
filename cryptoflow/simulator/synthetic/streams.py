"""Whole synthetic sessions as recording `Record`s, per protocol: what a client on one connection would
receive (plus Binance REST snapshots where the client would fetch them). `cryptoflow verify` and the
tests replay them through the real parsers and book engine; the market's books are the truth.
"""

from __future__ import annotations

from connectors.recordings.records import Record
from cryptoflow.simulator.synthetic import encoders as enc
from cryptoflow.simulator.synthetic.market import SyntheticMarket

PROTOCOLS = ("binance_spot", "binance_usdm", "bybit", "okx", "coinbase", "kraken_v2")

URLS = {
    "binance_spot": "wss://stream.binance.com:9443/stream",
    "binance_usdm": "wss://fstream.binance.com/public/stream",
    "bybit": "wss://stream.bybit.com/v5/public/linear",
    "okx": "wss://ws.okx.com:8443/ws/v5/public",
    "coinbase": "wss://advanced-trade-ws.coinbase.com",
    "kraken_v2": "wss://ws.kraken.com/v2",
}
REST_DEPTH = {
    "binance_spot": "https://api.binance.com/api/v3/depth?symbol={s}&limit=1000",
    "binance_usdm": "https://fapi.binance.com/fapi/v1/depth?symbol={s}&limit=1000",
}


def session(protocol: str, market: SyntheticMarket, messages: int, kraken_depth: int = 10) -> list[Record]:
    """`messages` book changes (round-robin over the market's symbols) after the opening snapshots."""
    conn = f"synthetic-{protocol}"
    ts = [0.0]

    def rec(kind: str, data: str, url: str | None = None) -> Record:
        ts[0] += 0.001
        return Record(kind, ts[0], data, url=url, conn=conn if kind != "http" else f"{conn}#http")  # type: ignore[arg-type]

    out = [rec("connect", "", URLS[protocol])]
    symbols = market.symbols
    if protocol in ("binance_spot", "binance_usdm"):
        e = enc.BinanceSpotEncoder(market) if protocol == "binance_spot" else enc.BinanceUsdmEncoder(market)
        pending = set(symbols)
        for _ in range(messages):
            ch = market.next_change()
            out.append(rec("recv", e.depth(ch)))
            if ch.symbol in pending:  # the client fetched the snapshot after its first buffered diff
                pending.discard(ch.symbol)
                url = REST_DEPTH[protocol].format(s=enc.concat(ch.symbol))
                out.append(rec("http", e.rest_depth(ch.symbol).decode(), url))
        return out
    if protocol == "bybit":
        e = enc.BybitEncoder(market)
        out += [rec("recv", e.snapshot(s)) for s in symbols]
        out += [rec("recv", e.delta(market.next_change())) for _ in range(messages)]
        return out
    if protocol == "okx":
        e = enc.OkxEncoder(market, "-SWAP")
        out += [rec("recv", e.snapshot(s)) for s in symbols]
        out += [rec("recv", e.update(market.next_change())) for _ in range(messages)]
        return out
    if protocol == "coinbase":
        e = enc.CoinbaseEncoder(market)
        out += [rec("recv", e.snapshot(s)) for s in symbols]
        out += [rec("recv", e.update(market.next_change())) for _ in range(messages)]
        return out
    if protocol == "kraken_v2":
        e = enc.KrakenV2Encoder(market, kraken_depth)
        out += [rec("recv", e.snapshot(s)) for s in symbols]
        for _ in range(messages):
            frame = e.update(market.next_change())
            if frame is not None:
                out.append(rec("recv", frame))
        return out
    raise ValueError(f"unknown protocol {protocol!r}; one of {PROTOCOLS}")
