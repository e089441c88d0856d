"""Independent ground truth for book tests: the recordings read with the standard library only (`json`,
`Decimal`, `zlib`), and a naive reference book (two dicts, sorted on every read). Nothing here imports
CryptoFlow, so tests never check the engine against itself."""

from __future__ import annotations

import heapq
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
        if n is not None and n < 100:
            return heapq.nlargest(n, self.bids.items())
        return sorted(self.bids.items(), reverse=True)[:n]

    def top_asks(self, n: int | None = None) -> list[tuple[Decimal, Decimal]]:
        if n is not None and n < 100:
            return heapq.nsmallest(n, self.asks.items())
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


# ------------------------------------------------------------------------------ per-venue book streams
# One connection's server frames plus, for the target book, the reference operations derived from them
# with the standard library: ("load" | "apply", bids, asks, id) keyed by the index of the frame that
# makes them effective. `ReferenceStream.after(i)` is the correct book once frames 0..i have arrived.


class ReferenceStream:
    def __init__(self, frames: list[tuple[str, str, str]], ops: list[tuple[int, str, list, list, int | None]],
                 depth: int | None = None) -> None:  # fmt: skip
        self.frames = frames  # (record kind "recv" | "http", url, raw text)
        self.ops = sorted(ops, key=lambda op: op[0])  # stable: keeps buffered diffs after their snapshot
        self.depth = depth
        self._book, self._pos, self._id = NaiveBook(depth), 0, None

    def after(self, index: int) -> tuple[NaiveBook, int | None]:
        if self._pos and self.ops[self._pos - 1][0] > index:
            self._book, self._pos, self._id = NaiveBook(self.depth), 0, None
        while self._pos < len(self.ops) and self.ops[self._pos][0] <= index:
            _, op, bids, asks, ident = self.ops[self._pos]
            (self._book.load if op == "load" else self._book.apply)(bids, asks)
            self._id = ident if ident is not None else self._id
            self._pos += 1
        return self._book, self._id

    def at_id(self, ident: int) -> NaiveBook:
        """The reference book right after the operation carrying exchange id `ident`."""
        book = NaiveBook(self.depth)
        for _, op, bids, asks, op_id in self.ops:
            (book.load if op == "load" else book.apply)(bids, asks)
            if op_id == ident:
                return book
        raise KeyError(ident)

    def target_frames(self) -> list[int]:
        """Indices of frames that change the target book after it first became live."""
        first_live = self.ops[0][0]
        return sorted({i for i, op, *_ in self.ops if op == "apply" and i > first_live})


def binance_stream(paths: list[Path], symbol: str, usdm: bool) -> ReferenceStream:
    frames: list[tuple[float, str, str, str]] = []
    for line in paths[0].read_text().splitlines():
        if line:
            url, _, rest = line.partition(" -> ")
            ts, _, body = rest.partition(": ")
            frames.append((float(ts), "http", url, body))
    url = paths[1].read_text().split(" ", 1)[0]
    frames += [(ts, "recv", url, raw) for ts, raw in v1_server_frames(paths[1])]
    frames.sort(key=lambda f: f[0])  # stable: receive-clock order, like the verify reader
    ops = []
    snap_index, last_id = None, None
    pending = []
    for i, (_, kind, url, raw) in enumerate(frames):
        if kind == "http":
            if f"symbol={symbol}&" in url:
                snap = json.loads(raw)
                snap_index, last_id = i, snap["lastUpdateId"]
                ops.append((i, "load", snap["bids"], snap["asks"], last_id))
                for _first, u, b, a in pending:
                    if u > last_id or (usdm and u == last_id):
                        ops.append((i, "apply", b, a, u))
            continue
        data = json.loads(raw)["data"]
        if data.get("e") != "depthUpdate" or data["s"] != symbol:
            continue
        if snap_index is None:
            pending.append((data["U"], data["u"], data["b"], data["a"]))
        elif data["u"] > last_id or (usdm and data["u"] == last_id):
            ops.append((i, "apply", data["b"], data["a"], data["u"]))
    return ReferenceStream([(k, u, r) for _, k, u, r in frames], ops)


def okx_stream(inst_id: str) -> ReferenceStream:
    url = OKX.read_text().split(" ", 1)[0]
    frames = [("recv", url, raw) for _, raw in v1_server_frames(OKX)]
    ops = []
    for i, (_, _, raw) in enumerate(frames):
        msg = json.loads(raw)
        if msg.get("arg", {}).get("channel") == "books" and msg["arg"]["instId"] == inst_id and "data" in msg:
            entry = msg["data"][0]
            bids = [lv[:2] for lv in entry["bids"]]
            asks = [lv[:2] for lv in entry["asks"]]
            ops.append((i, "load" if msg["action"] == "snapshot" else "apply", bids, asks, None))
    return ReferenceStream(frames, ops)


def kraken_v1_stream(pair: str) -> ReferenceStream:
    url = KRAKEN_V1.read_text().split(" ", 1)[0]
    frames = [("recv", url, raw) for _, raw in v1_server_frames(KRAKEN_V1)]
    ops = []
    for i, (_, _, raw) in enumerate(frames):
        msg = json.loads(raw)
        if isinstance(msg, list) and str(msg[-2]).startswith("book-") and msg[-1] == pair:
            bids, asks, snapshot = [], [], False
            for body in msg[1:-2]:
                snapshot = snapshot or "as" in body
                asks += [lv[:2] for lv in body.get("as", []) + body.get("a", [])]
                bids += [lv[:2] for lv in body.get("bs", []) + body.get("b", [])]
            ops.append((i, "load" if snapshot else "apply", bids, asks, None))
    return ReferenceStream(frames, ops, depth=1000)


def bybit_stream(market: str, symbol: str) -> ReferenceStream:
    conns, frames = {}, []
    with BYBIT_V3.open() as handle:
        for line in handle:
            obj = json.loads(line)
            if obj["t"] == "connect":
                conns[obj["conn"]] = obj["addr"]
            elif obj["t"] == "recv" and conns[obj["conn"]].endswith("/" + market):
                frames.append(("recv", conns[obj["conn"]], obj["data"]))
    ops = []
    for i, (_, _, raw) in enumerate(frames):
        msg = json.loads(raw)
        if str(msg.get("topic", "")).startswith("orderbook.") and msg["data"]["s"] == symbol:
            d = msg["data"]
            ops.append((i, "load" if msg["type"] == "snapshot" else "apply", d["b"], d["a"], d["u"]))
    return ReferenceStream(frames, ops)


def coinbase_stream(product: str) -> ReferenceStream:
    frames = [
        ("recv", "wss://advanced-trade-ws.coinbase.com", raw) for _, _, raw in v3_recv_frames(COINBASE_V3)
    ]
    ops = []
    for i, (_, _, raw) in enumerate(frames):
        msg = json.loads(raw)
        if msg["channel"] != "l2_data":
            continue
        for event in msg["events"]:
            if event["product_id"] != product:
                continue
            bids = [[u["price_level"], u["new_quantity"]] for u in event["updates"] if u["side"] == "bid"]
            asks = [[u["price_level"], u["new_quantity"]] for u in event["updates"] if u["side"] == "offer"]
            ops.append(
                (i, "load" if event["type"] == "snapshot" else "apply", bids, asks, msg["sequence_num"])
            )
    return ReferenceStream(frames, ops)


def apply_level_rows(bids: dict, asks: dict, rows: list[dict]) -> None:
    """Apply one message's committed level rows (`side`, `price`, `qty`; qty 0 deletes) to a naive
    dict book: how the flow tests rebuild a book from what the table holds."""
    for r in rows:
        side = bids if r["side"] == "bid" else asks
        if r["qty"] == 0:
            side.pop(r["price"], None)
        else:
            side[r["price"]] = r["qty"]
