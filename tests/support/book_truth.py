"""Independent ground truth for book tests: the recordings read with the standard library only (`json`,
`Decimal`, `zlib`), and a naive reference book (two dicts, sorted on every read). Nothing here imports
CryptoFlow, so tests never check the engine against itself."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "external"
BINANCE_SPOT = [
    FIXTURES / "binance" / "cryptofeed_BINANCE.http.0.0",
    FIXTURES / "binance" / "cryptofeed_BINANCE.ws.1.0",
]
BINANCE_USDM = [
    FIXTURES / "binance" / "cryptofeed_BINANCE_FUTURES.http.0.0",
    FIXTURES / "binance" / "cryptofeed_BINANCE_FUTURES.ws.1.0",
]
OKX = FIXTURES / "okx" / "cryptofeed_OKX.ws.1.0"
KRAKEN_V1 = FIXTURES / "kraken" / "cryptofeed_KRAKEN.ws.50.0"
KRAKEN_V2_VECTOR = FIXTURES / "kraken" / "kraken_v2_book_snapshot_ALGO-USD_checksum_vector.json"
BYBIT_V3 = FIXTURES / "bybit" / "cryptofeed_v3_BYBIT.jsonl"
BYBIT_L1 = [FIXTURES / "bybit" / "cryptofeed_BYBIT.ws.1.0", FIXTURES / "bybit" / "cryptofeed_BYBIT.ws.2.0"]
COINBASE_V3 = FIXTURES / "coinbase" / "cryptofeed_v3_COINBASE.jsonl"


def v1_server_frames(path: Path) -> list[tuple[float, str]]:
    """(receive ts, raw frame) of every server frame of a cryptofeed v1 ws file."""
    out = []
    for line in path.read_text().splitlines():
        head, _, rest = line.partition(": ")
        if line and " " not in head and head.replace(".", "", 1).isdigit():
            out.append((float(head), rest))
    return out


def v3_recv_frames(path: Path) -> list[tuple[str, float, str]]:
    """(connection, receive ts, raw frame) of every received frame of a cryptofeed v3 file."""
    out = []
    with path.open() as handle:
        for line in handle:
            obj = json.loads(line)
            if obj["t"] == "recv":
                out.append((obj["conn"], obj["ts"], obj["data"]))
    return out


class NaiveBook:
    """Reference book: Decimal price -> Decimal qty per side; `depth` truncates like Kraken does."""

    def __init__(self, depth: int | None = None) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.depth = depth

    def load(self, bids, asks) -> None:
        self.bids, self.asks = {}, {}
        self.apply(bids, asks)

    def apply(self, bids, asks) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for level in levels:
                price, qty = Decimal(level[0]), Decimal(level[1])
                if qty == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        if self.depth is not None:
            if len(self.bids) > self.depth:
                self.bids = dict(self.top_bids(self.depth))
            if len(self.asks) > self.depth:
                self.asks = dict(self.top_asks(self.depth))

    def top_bids(self, n: int | None = None) -> list[tuple[Decimal, Decimal]]:
        return sorted(self.bids.items(), reverse=True)[:n]

    def top_asks(self, n: int | None = None) -> list[tuple[Decimal, Decimal]]:
        return sorted(self.asks.items())[:n]

    def copy(self) -> NaiveBook:
        other = NaiveBook(self.depth)
        other.bids, other.asks = dict(self.bids), dict(self.asks)
        return other


def okx_book_frames() -> list[dict]:
    """Every OKX `books` message of the recording, decoded, in arrival order."""
    out = []
    for _, raw in v1_server_frames(OKX):
        msg = json.loads(raw)
        if msg.get("arg", {}).get("channel") == "books" and "data" in msg:
            out.append(msg)
    return out


def okx_checksum_counts() -> Counter:
    """instId -> number of book messages carrying a non-zero checksum."""
    counts: Counter = Counter()
    for msg in okx_book_frames():
        for entry in msg["data"]:
            if entry.get("checksum"):
                counts[msg["arg"]["instId"]] += 1
    return counts


def kraken_v1_book_messages() -> list[tuple[str, bool, list, list, str | None]]:
    """(pair, is_snapshot, bids, asks, checksum) per v1 book message, levels as [price, qty] text."""
    out = []
    for _, raw in v1_server_frames(KRAKEN_V1):
        msg = json.loads(raw)
        if not isinstance(msg, list) or not str(msg[-2]).startswith("book-"):
            continue
        bids, asks, checksum, snapshot = [], [], None, False
        for body in msg[1:-2]:
            snapshot = snapshot or "as" in body or "bs" in body
            asks += [lv[:2] for lv in body.get("as", []) + body.get("a", [])]
            bids += [lv[:2] for lv in body.get("bs", []) + body.get("b", [])]
            checksum = body.get("c", checksum)
        out.append((msg[-1], snapshot, bids, asks, checksum))
    return out


def bybit_delta_counts() -> Counter:
    """(market, symbol) -> number of orderbook deltas in the v3 recording."""
    markets = {}
    counts: Counter = Counter()
    with BYBIT_V3.open() as handle:
        for line in handle:
            obj = json.loads(line)
            if obj["t"] == "connect":
                markets[obj["conn"]] = obj["addr"].rsplit("/", 1)[-1]
            elif obj["t"] == "recv":
                msg = json.loads(obj["data"])
                if str(msg.get("topic", "")).startswith("orderbook.") and msg["type"] == "delta":
                    counts[(markets[obj["conn"]], msg["data"]["s"])] += 1
    return counts


def coinbase_update_counts() -> Counter:
    counts: Counter = Counter()
    for _, _, raw in v3_recv_frames(COINBASE_V3):
        msg = json.loads(raw)
        if msg["channel"] == "l2_data":
            for event in msg["events"]:
                if event["type"] == "update":
                    counts[event["product_id"]] += 1
    return counts


def binance_applied_counts(paths: list[Path], usdm: bool = False) -> Counter:
    """Per symbol: the diffs a correct book applies: `u > lastUpdateId` on spot, `u >= lastUpdateId` on
    USD-M (its first diff satisfies `U <= lastUpdateId <= u`)."""
    snapshots = {}
    for line in paths[0].read_text().splitlines():
        if line:
            url, _, rest = line.partition(" -> ")
            snapshots[url.split("symbol=")[1].split("&")[0]] = json.loads(rest.partition(": ")[2])[
                "lastUpdateId"
            ]
    counts: Counter = Counter()
    for _, raw in v1_server_frames(paths[1]):
        data = json.loads(raw)["data"]
        if data.get("e") == "depthUpdate" and (
            data["u"] > snapshots[data["s"]] or (usdm and data["u"] == snapshots[data["s"]])
        ):
            counts[data["s"]] += 1
    return counts
