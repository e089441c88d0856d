"""One L2 order book: price -> quantity per side.

Two implementations of a side, same behaviour: `Side` is the compiled one (operators/book/_levels.c: one
32-byte struct per level in a sorted array, the exchange's text rebuilt exactly from integers; used
whenever the extension is built) and `PySide` is the pure-Python fallback described here. Set
`CRYPTOFLOW_PURE_PYTHON_BOOK=1` to force the fallback.

Why the fallback's structure: most level updates change the quantity of a price already in the book, so the hot
path is one dict lookup keyed by the exchange's own price text (`qty[price] = new_qty`, no parsing at
all). Only when a price appears or disappears is the exact integer sort key computed (`price_key`: the
price scaled to 18 decimals, exact decimal ordering without binary floats or `Decimal` objects) and a
`bisect` insert/delete done in two parallel sorted lists (`keys`, `texts`), a C memmove that is cheap at
book sizes of a few thousand levels. The text is kept because checksums (OKX, Kraken) are computed over
it and rows are written from it. A price written two ways ("1.5" vs "1.50") is still one level: the
sort key is compared on every insert.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from decimal import Decimal

SCALE = 18  # decimal places of the integer sort key; Iceberg prices are decimal(38, 18) too


_POW = [10**k for k in range(SCALE + 1)]


def price_key(text: str) -> int:
    """Exact integer image of a decimal string at `SCALE` places (order-preserving; digits beyond
    `SCALE` places are truncated, like the tables' decimal(38, 18))."""
    dot = text.find(".")
    try:
        if dot < 0:
            return int(text) * _POW[SCALE]
        places = len(text) - dot - 1
        if places <= SCALE:
            return int(text.replace(".", "", 1)) * _POW[SCALE - places]
    except ValueError:
        pass
    return int(Decimal(text).scaleb(SCALE))  # exponent form or extreme precision: slow exact path


def is_zero(qty: str) -> bool:
    """`"0"`, `"0.00000000"`, `"0E-8"` all delete a level."""
    z = qty.strip("0.")
    return not z or z[0] in "Ee"


class PySide:
    """One side of a book (pure Python): `qty[price_text]`, plus `keys` (ascending integer sort keys) and `texts`
    (the price text of each key, same order), whatever the side."""

    __slots__ = ("descending", "horizon", "keys", "qty", "texts")

    def __init__(self, descending: bool) -> None:
        self.descending = descending
        self.qty: dict[str, str] = {}
        self.keys: list[int] = []
        self.texts: list[str] = []
        # Worst price still known after we cut the side to the depth cap: levels beyond it were
        # dropped, so an update there would create a level with unknown neighbours: it is ignored.
        self.horizon: int | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, price: str) -> bool:
        return price in self.qty or self.get(price) is not None

    def get(self, price: str) -> str | None:
        """Quantity text at `price` (any writing of the same value), or None."""
        qty = self.qty.get(price)
        if qty is not None:
            return qty
        key = price_key(price)
        i = bisect_left(self.keys, key)
        return self.qty[self.texts[i]] if i < len(self.keys) and self.keys[i] == key else None

    def apply(self, levels: Iterable[Sequence[str]], cap: int | None = None) -> int:
        """`set` every level in order (the common case, a new quantity for a price already held, inline),
        then cut the side to `cap` levels. Returns the number of levels seen."""
        n = 0
        book, slow = self.qty, self.set
        for level in levels:
            n += 1
            price, qty = level[0], level[1]
            if price in book:
                z = qty.strip("0.")
                if z and z[0] not in "Ee":
                    book[price] = qty
                    continue
            slow(price, qty)
        if cap is not None and len(self.keys) > cap:
            self.truncate(cap)
        return n

    def set(self, price: str, qty: str) -> bool:
        """Insert, replace or (zero qty) delete one level. Returns whether a level was added or removed."""
        book = self.qty
        zero = is_zero(qty)
        if price in book and not zero:
            book[price] = qty
            return False
        key = price_key(price)
        keys = self.keys
        i = bisect_left(keys, key)
        present = i < len(keys) and keys[i] == key
        if zero:
            if not present:
                return False  # deleting a level we do not hold is normal (beyond snapshot depth)
            del book[self.texts[i]]
            del keys[i]
            del self.texts[i]
            return True
        if present:  # same price written differently: keep the newest text
            del book[self.texts[i]]
            self.texts[i] = price
            book[price] = qty
            return False
        horizon = self.horizon
        if horizon is not None and (key < horizon if self.descending else key > horizon):
            return False
        keys.insert(i, key)
        self.texts.insert(i, price)
        book[price] = qty
        return True

    def best(self) -> tuple[str, str] | None:
        if not self.keys:
            return None
        text = self.texts[-1] if self.descending else self.texts[0]
        return text, self.qty[text]

    def best_key(self) -> int | None:
        if not self.keys:
            return None
        return self.keys[-1] if self.descending else self.keys[0]

    def top(self, n: int) -> list[tuple[str, str]]:
        """The best `n` levels, best first."""
        texts, book = self.texts, self.qty
        chosen = texts[: -n - 1 : -1] if self.descending else texts[:n]
        return [(t, book[t]) for t in chosen]

    def truncate(self, depth: int, remember: bool = True) -> int:
        """Drop the worst levels beyond `depth`; returns how many were dropped. `remember` sets the
        horizon (our own depth cap); exchange-side truncation (Kraken) does not, because the exchange
        sends the levels that move back into scope."""
        extra = len(self.keys) - depth
        if extra <= 0:
            return 0
        if self.descending:
            dropped = self.texts[:extra]
            self.keys, self.texts = self.keys[extra:], self.texts[extra:]
        else:
            dropped = self.texts[depth:]
            self.keys, self.texts = self.keys[:depth], self.texts[:depth]
        book = self.qty
        for t in dropped:
            del book[t]
        if remember and self.keys:
            self.horizon = self.keys[0] if self.descending else self.keys[-1]
        return extra

    def clear(self) -> None:
        self.qty, self.keys, self.texts = {}, [], []
        self.horizon = None

    def load(self, levels: Iterable[Sequence[str]]) -> int:
        """Replace the side with a snapshot in one pass: build the map, sort the keys once."""
        by_key: dict[int, tuple[str, str]] = {}
        n = 0
        for level in levels:
            n += 1
            price, qty = level[0], level[1]
            if is_zero(qty):
                by_key.pop(price_key(price), None)
            else:
                by_key[price_key(price)] = (price, qty)
        self.keys = sorted(by_key)
        self.texts = [by_key[k][0] for k in self.keys]
        self.qty = {by_key[k][0]: by_key[k][1] for k in self.keys}
        self.horizon = None
        return n


try:
    # The compiled side also restores a pickled `PySide` (recovery data written before it existed holds
    # the pure-Python side under the name `Side`). Not subclassed here: that costs ~40 ns per call.
    from operators.book._levels import Side as CSide
except ImportError:  # not compiled (no C compiler at install time): the pure-Python side
    CSide = None

Side = PySide if CSide is None or os.environ.get("CRYPTOFLOW_PURE_PYTHON_BOOK") == "1" else CSide
SIDES = {"python": PySide} if CSide is None else {"c": CSide, "python": PySide}  # for tests and benchmarks


class OrderBook:
    """Both sides of one book. `depth_cap` bounds each side (worst levels are dropped). `side`: the side
    implementation (default `Side`)."""

    __slots__ = ("asks", "bids", "depth_cap")

    def __init__(self, depth_cap: int = 2000, side: type | None = None) -> None:
        self.depth_cap = depth_cap
        cls = side or Side
        self.bids = cls(descending=True)
        self.asks = cls(descending=False)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def load(self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> int:
        """Replace the book with a snapshot; returns the number of levels loaded."""
        n = self.bids.load(bids) + self.asks.load(asks)
        self.bids.truncate(self.depth_cap)
        self.asks.truncate(self.depth_cap)
        return n

    def apply(self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> int:
        """Apply absolute level updates (qty 0 deletes), then enforce the depth cap. Returns level count."""
        cap = self.depth_cap
        return self.bids.apply(bids, cap) + self.asks.apply(asks, cap)

    def crossed(self) -> bool:
        """Best bid at or above best ask: impossible on a correct book."""
        b, a = self.bids.best_key(), self.asks.best_key()
        return b is not None and a is not None and b >= a

    def best_bid(self) -> tuple[str, str] | None:
        return self.bids.best()

    def best_ask(self) -> tuple[str, str] | None:
        return self.asks.best()

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)
