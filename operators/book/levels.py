"""One L2 order book: price -> quantity per side, kept as the exchange's decimal text.

Why this structure: every level update is a dict lookup plus, only when a price appears or disappears,
a `bisect` insert/delete in a sorted list of integer keys (a C memmove, cheap at book sizes of a few
thousand levels). The sort key is the price scaled to an integer (`price_key`), so ordering is exact
decimal ordering without binary floats and without building `Decimal` objects. The original text is
kept because checksums (OKX, Kraken) are computed over it, and rows are written from it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from decimal import Decimal

SCALE = 18  # decimal places of the integer sort key; Iceberg prices are decimal(38, 18) too


def price_key(text: str) -> int:
    """Exact integer image of a non-negative decimal string at `SCALE` places (order-preserving)."""
    whole, _, frac = text.partition(".")
    if len(frac) > SCALE or not (whole or "0").isdigit() or (frac and not frac.isdigit()):
        return int(Decimal(text).scaleb(SCALE))  # exponent form or extreme precision: slow exact path
    return int((whole or "0") + frac + "0" * (SCALE - len(frac)))


def is_zero(qty: str) -> bool:
    """`"0"`, `"0.00000000"`, `"0E-8"` all delete a level."""
    return not qty.strip("0.") or (("E" in qty or "e" in qty) and Decimal(qty) == 0)


class Side:
    """One side of a book. `keys` is sorted ascending whatever the side; `levels[key] = (price, qty)`."""

    __slots__ = ("descending", "horizon", "keys", "levels")

    def __init__(self, descending: bool) -> None:
        self.descending = descending
        self.keys: list[int] = []
        self.levels: dict[int, tuple[str, str]] = {}
        # Worst price still known after we cut the side to the depth cap: levels beyond it were
        # dropped, so an update there would create a level with unknown neighbours: it is ignored.
        self.horizon: int | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def set(self, price: str, qty: str) -> bool:
        """Insert, replace or (zero qty) delete one level. Returns whether a level was added or removed."""
        key = price_key(price)
        levels = self.levels
        horizon = self.horizon
        if horizon is not None and (key < horizon if self.descending else key > horizon):
            return False
        if is_zero(qty):
            if levels.pop(key, None) is None:
                return False  # deleting a level we do not hold is normal (beyond snapshot depth)
            keys = self.keys
            del keys[bisect_left(keys, key)]
            return True
        if key in levels:
            levels[key] = (price, qty)
            return False
        levels[key] = (price, qty)
        keys = self.keys
        keys.insert(bisect_left(keys, key), key)
        return True

    def best(self) -> tuple[str, str] | None:
        if not self.keys:
            return None
        return self.levels[self.keys[-1] if self.descending else self.keys[0]]

    def best_key(self) -> int | None:
        if not self.keys:
            return None
        return self.keys[-1] if self.descending else self.keys[0]

    def top(self, n: int) -> list[tuple[str, str]]:
        """The best `n` levels, best first."""
        keys, levels = self.keys, self.levels
        chosen = keys[: -n - 1 : -1] if self.descending else keys[:n]
        return [levels[k] for k in chosen]

    def truncate(self, depth: int, remember: bool = True) -> int:
        """Drop the worst levels beyond `depth`; returns how many were dropped. `remember` sets the
        horizon (our own depth cap); exchange-side truncation (Kraken) does not, because the exchange
        sends the levels that move back into scope."""
        extra = len(self.keys) - depth
        if extra <= 0:
            return 0
        keys, levels = self.keys, self.levels
        if self.descending:
            dropped, self.keys = keys[:extra], keys[extra:]
        else:
            dropped, self.keys = keys[depth:], keys[:depth]
        for k in dropped:
            del levels[k]
        if remember and self.keys:
            self.horizon = self.keys[0] if self.descending else self.keys[-1]
        return extra

    def clear(self) -> None:
        self.keys = []
        self.levels = {}
        self.horizon = None

    def load(self, levels: Iterable[Sequence[str]]) -> int:
        """Replace the side with a snapshot in one pass: build the map, sort the keys once."""
        table: dict[int, tuple[str, str]] = {}
        n = 0
        for level in levels:
            n += 1
            price, qty = level[0], level[1]
            if is_zero(qty):
                continue
            table[price_key(price)] = (price, qty)
        self.levels = table
        self.keys = sorted(table)
        self.horizon = None
        return n


class OrderBook:
    """Both sides of one book. `depth_cap` bounds each side (worst levels are dropped)."""

    __slots__ = ("asks", "bids", "depth_cap")

    def __init__(self, depth_cap: int = 2000) -> None:
        self.depth_cap = depth_cap
        self.bids = Side(descending=True)
        self.asks = Side(descending=False)

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
        n = 0
        bid_set, ask_set = self.bids.set, self.asks.set
        for level in bids:
            bid_set(level[0], level[1])
            n += 1
        for level in asks:
            ask_set(level[0], level[1])
            n += 1
        cap = self.depth_cap
        if len(self.bids.keys) > cap:
            self.bids.truncate(cap)
        if len(self.asks.keys) > cap:
            self.asks.truncate(cap)
        return n

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
