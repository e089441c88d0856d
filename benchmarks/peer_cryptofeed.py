"""cryptofeed (PyPI) as the peer: its Binance message handler and OrderBook driven in-process.

What is timed, per frame: `Binance[Futures].message_handler(frame_text, conn, time.time())` awaited in
one asyncio loop, i.e. cryptofeed's JSON decode (`parse_float=Decimal`), stream dispatch, update-id
continuity check, `Decimal` conversion of every level, the `order_book` C-extension book update and
`book_callback` into one no-op async callback. The one REST snapshot per symbol is served from memory
(the recorded body) the first time cryptofeed asks for it, inside the timed loop, as it would be live.

What is not: network, WebSocket framing, cryptofeed's connection handler and any storage backend
(cryptofeed writes nothing; our end-to-end run also writes Parquet and commits Iceberg snapshots).
Symbol metadata is pre-seeded into `cryptofeed.symbols.Symbols` so no exchangeInfo request is made.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from benchmarks.corpus import BinanceCorpus, binance_instruments_json


@dataclass
class PeerResult:
    seconds: float
    frames: int
    book_updates: int  # callbacks carrying a delta (= diffs cryptofeed applied)
    snapshots: int


def _feed(corpus: BinanceCorpus, callback):
    from cryptofeed.defines import L2_BOOK
    from cryptofeed.exchanges import Binance, BinanceFutures
    from cryptofeed.symbols import Symbols

    cls = BinanceFutures if corpus.market == "perp" else Binance
    entries = [dict(e, filters=[{"tickSize": "0.00000001"}]) for e in binance_instruments_json(corpus)]
    if corpus.market == "perp":
        entries = [dict(e, contractType="PERPETUAL") for e in entries]
    Symbols.clear()
    mapping, info = cls._parse_symbol_data({"symbols": entries})
    Symbols.set(cls.id, mapping, info)
    wanted = set(corpus.symbols)
    symbols = [norm for norm, exch in mapping.items() if exch in wanted]
    feed = cls(symbols=symbols, channels=[L2_BOOK], callbacks={L2_BOOK: callback})
    bodies = {s: snap.body for s, snap in corpus.snapshots.items()}

    async def read(url: str, *args, **kwargs) -> str:
        return bodies[parse_qs(urlsplit(url).query)["symbol"][0]]

    feed.http_conn.read = read  # REST snapshot from memory
    return feed


def run_cryptofeed(corpus: BinanceCorpus) -> PeerResult:
    counts = {"delta": 0, "snapshot": 0}

    async def on_book(book, receipt_ts) -> None:
        counts["delta" if book.delta is not None else "snapshot"] += 1

    feed = _feed(corpus, on_book)
    frames = corpus.frames

    async def drive() -> float:
        handler, clock = feed.message_handler, time.time
        started = time.perf_counter()
        for frame in frames:
            await handler(frame, None, clock())
        return time.perf_counter() - started

    seconds = asyncio.run(drive())
    return PeerResult(seconds, len(frames), counts["delta"], counts["snapshot"])
