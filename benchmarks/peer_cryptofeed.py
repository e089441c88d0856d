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


# ------------------------------------------------------------------------------ other venues
# Kraken v1, OKX v5, Bybit v5 and Coinbase Advanced Trade book frames through cryptofeed's own
# handlers, for the ceiling tables (we have no connector for them yet). Same inclusions as above; the
# frames are repeated verbatim, so every repetition starts again from the recorded snapshots (cryptofeed
# resets the book on a snapshot). Coinbase's two full-book snapshots (12 MB) are fed once before the
# clock starts and only the update frames are timed (their quantities are absolute, so repeating them
# is harmless). The symbol map is derived from the frames (normalized name -> the venue's name).


@dataclass
class _Conn:
    """cryptofeed's Bybit handler reads the market (linear/spot) from the connection's URL."""

    address: str


def _other_feed(venue: str, frames: list[str], addresses: list[str] | None, callback):
    import orjson
    from cryptofeed.defines import L2_BOOK
    from cryptofeed.exchanges import OKX, Bybit, Coinbase, Kraken
    from cryptofeed.symbols import Symbols

    if venue == "kraken-v1-book":
        cls = Kraken
        names = {orjson.loads(f)[-1] for f in frames}
        mapping = {n.replace("/", "-").replace("XBT", "BTC"): n for n in names}
    elif venue == "okx-books":
        cls = OKX
        mapping = {i: i for i in {orjson.loads(f)["arg"]["instId"] for f in frames}}
    elif venue == "coinbase-l2-updates":
        cls = Coinbase
        ids = {e["product_id"] for f in frames for e in orjson.loads(f)["events"]}
        mapping = {i: i for i in ids}
    elif venue == "bybit-v5-orderbook":
        cls = Bybit
        mapping = {}
        for address, frame in zip(addresses or [], frames, strict=True):
            sym = orjson.loads(frame)["topic"].rsplit(".", 1)[1]
            if address.endswith("spot"):
                base, quote = cls.convert_to_spot_name(cls, sym).split("/")
                mapping[f"{base}-{quote}"] = f"{base}/{quote}"
            else:
                mapping[f"{sym[:-4]}-{sym[-4:]}-PERP"] = sym
    else:
        raise ValueError(f"no cryptofeed driver for {venue}")
    Symbols.clear()
    Symbols.set(cls.id, mapping, {})
    return cls(symbols=sorted(mapping), channels=[L2_BOOK], callbacks={L2_BOOK: callback})


def run_cryptofeed_other(
    venue: str, frames: list[str], addresses: list[str] | None = None, prime: list[str] | None = None
) -> PeerResult:
    """Every frame is a book message: a complete run makes one callback per frame (per event on
    Coinbase). `prime` frames (Coinbase snapshots) are handled before the clock starts, not counted."""
    counts = {"delta": 0, "snapshot": 0}

    async def on_book(book, receipt_ts) -> None:
        counts["delta" if book.delta is not None else "snapshot"] += 1

    feed = _other_feed(venue, frames, addresses, on_book)
    conns = [_Conn(a) for a in addresses] if addresses else [None] * len(frames)

    async def drive() -> float:
        handler, clock = feed.message_handler, time.time
        for frame in prime or []:
            await handler(frame, None, clock())
        counts["delta"] = counts["snapshot"] = 0
        started = time.perf_counter()
        for frame, conn in zip(frames, conns, strict=True):
            await handler(frame, conn, clock())
        return time.perf_counter() - started

    seconds = asyncio.run(drive())
    return PeerResult(seconds, len(frames), counts["delta"], counts["snapshot"])


CRYPTOFEED_VENUES = ("kraken-v1-book", "okx-books", "bybit-v5-orderbook", "coinbase-l2-updates")
