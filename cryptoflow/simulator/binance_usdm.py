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

import json
import random
from decimal import Decimal

from cryptoflow import paths
from cryptoflow.simulator.binance_spot import BinanceSpotVenue, RecordedFrame

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


def with_generated_derivatives(venue: BinanceUsdmVenue, seed: int = 7) -> BinanceUsdmVenue:
    """The venue plus generated `markPriceUpdate` (1 per symbol per second) and `forceOrder` frames
    (at most 1 per symbol per second, as Binance pushes them) on the recording's timeline, because no
    public recording has either. Payloads are valid USD-M messages; prices follow the recorded book
    (the mark price is the recorded mid of the first snapshot, walking by a few ticks)."""
    rng = random.Random(seed)
    by_symbol = {sym: json.loads(body) for sym, body in venue.snapshots.items()}
    start, end = venue.frames[0].ts, venue.frames[-1].ts
    extra: list[RecordedFrame] = []
    for symbol, snap in sorted(by_symbol.items()):
        mid = (Decimal(snap["bids"][0][0]) + Decimal(snap["asks"][0][0])) / 2
        tick = Decimal(snap["asks"][0][0]) - Decimal(snap["bids"][0][0])
        lower, second = symbol.lower(), 0
        while start + second < end:
            ts = start + second + rng.random() * 0.5
            event_ms = int(ts * 1000)
            mark = mid + tick * rng.randint(-3, 3)
            data = {"e": "markPriceUpdate", "E": event_ms, "s": symbol, "p": f"{mark:f}",
                    "i": f"{mark - tick / 2:f}", "P": f"{mark:f}", "r": f"{rng.randint(-50, 150) / 1e6:.8f}",
                    "T": (event_ms // 28_800_000 + 1) * 28_800_000}  # fmt: skip
            stream = f"{lower}@markPrice@1s"
            extra.append(RecordedFrame(ts, stream, json.dumps({"stream": stream, "data": data})))
            if rng.random() < 0.3:
                qty = rng.randint(1, 500)
                order = {"s": symbol, "S": rng.choice(["SELL", "BUY"]), "o": "LIMIT", "f": "IOC", "q": str(qty),
                         "p": f"{mark - tick * 5:f}", "ap": f"{mark:f}", "X": "FILLED", "l": str(qty),
                         "z": str(qty), "T": event_ms + 1}  # fmt: skip
                stream = f"{lower}@forceOrder"
                liq = {"stream": stream, "data": {"e": "forceOrder", "E": event_ms + 3, "o": order}}
                extra.append(RecordedFrame(ts + 0.003, stream, json.dumps(liq)))
            second += 1
    frames = sorted([*venue.frames, *extra], key=lambda f: f.ts)
    return BinanceUsdmVenue(frames, venue.snapshots, list(venue.instruments.values()))
