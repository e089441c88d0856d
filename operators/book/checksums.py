"""Exchange book checksums, computed over the price/qty text exactly as the exchange sent it.

OKX v5 (deprecated in 2026, still in old recordings): CRC32 of `bid1px:bid1sz:ask1px:ask1sz:...` over
the best 25 levels interleaved (one side continues alone when the other runs out), as a signed int32.
Kraken v1/v2: CRC32 of the best 10 asks then the best 10 bids, each level's price text then qty text
with the `.` removed and leading zeros stripped, as an unsigned int32.
"""

from __future__ import annotations

import zlib

from operators.book.levels import OrderBook, PySide

try:  # the CRC computed in C straight from the compiled sides' integers (no bytes object)
    from operators.book._levels import kraken_crc32
except ImportError:  # pragma: no cover - only without a C compiler
    kraken_crc32 = None


def okx_checksum(book: OrderBook) -> int:
    bids, asks = book.bids.top(25), book.asks.top(25)
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.append(bids[i][0])
            parts.append(bids[i][1])
        if i < len(asks):
            parts.append(asks[i][0])
            parts.append(asks[i][1])
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def _kraken_digits(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def kraken_checksum(book: OrderBook) -> int:
    asks, bids = book.asks, book.bids
    if kraken_crc32 is not None and type(asks) is not PySide:
        return kraken_crc32(asks, bids, 10)
    parts: list[str] = []
    for price, qty in book.asks.top(10):
        parts.append(_kraken_digits(price))
        parts.append(_kraken_digits(qty))
    for price, qty in book.bids.top(10):
        parts.append(_kraken_digits(price))
        parts.append(_kraken_digits(qty))
    return zlib.crc32("".join(parts).encode())
