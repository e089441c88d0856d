"""The frame corpus every contender reads: real recorded frames, repeated for volume.

Binance depth streams are repeated with shifted update ids so each repetition *continues* the book of
the previous one (`U`, `u` and `pu` move by the id span of the recording, event time `E` by its time
span). A sequencer therefore sees one long contiguous stream per symbol: after the single REST snapshot
of repetition 0 every diff is applied, nothing resyncs, and cryptofeed's own continuity checks pass
too. Repetition 0 keeps the recorded frame text byte for byte; later repetitions are re-serialized with
orjson (same fields, compact separators, as Binance sends them).

Other venues are only read for the ceilings (their frames repeated verbatim): our pipeline has no
connector for them yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

from connectors.recordings.cryptofeed_v1 import read_cryptofeed_v1
from cryptoflow.paths import EXTERNAL_RECORDINGS, INSTRUMENTS


@dataclass(frozen=True, slots=True)
class Snapshot:
    symbol: str
    body: str  # REST depth response text
    last_update_id: int
    levels: int


@dataclass
class BinanceCorpus:
    """Depth frames of one Binance market, repeated `reps` times, plus the REST snapshots of rep 0.

    `schedule` is the arrival order the live client would see: ("ws", frame) and ("rest", symbol)
    entries, each snapshot placed at its recorded receive time (usually after the diffs straddling it).
    """

    name: str  # binance-spot | binance-usdm
    market: str  # spot | perp
    reps: int
    frames: list[str]
    snapshots: dict[str, Snapshot]
    schedule: list[tuple[str, str]]
    symbols: list[str]
    frame_levels: int  # level changes carried by all frames
    applied_levels: int  # level changes of the diffs a correct sequencer applies (ground truth)
    applied_frames: int  # diffs a correct sequencer applies
    stream_suffix: str  # e.g. "depth@100ms"
    recorded: list[tuple[float, str]] = field(default_factory=list)  # (ts, frame) of rep 0, for simulators

    @property
    def snapshot_levels(self) -> int:
        return sum(s.levels for s in self.snapshots.values())

    @property
    def expected_rows(self) -> int:
        """Rows a correct delta pipeline writes: every snapshot level plus every applied diff level."""
        return self.snapshot_levels + self.applied_levels


BINANCE_FILES = {
    "binance-spot": ("spot", "cryptofeed_BINANCE.ws.1.0", "cryptofeed_BINANCE.http.0.0"),
    "binance-usdm": ("perp", "cryptofeed_BINANCE_FUTURES.ws.1.0", "cryptofeed_BINANCE_FUTURES.http.0.0"),
}


def _prev_id(data: dict, market: str) -> int:
    """The id the previous diff of the same book must have ended on."""
    return int(data["pu"]) if market == "perp" else int(data["U"]) - 1


def load_binance(name: str, reps: int, root: Path = EXTERNAL_RECORDINGS) -> BinanceCorpus:
    market, ws_file, http_file = BINANCE_FILES[name]
    recorded: list[tuple[float, str, dict]] = []
    for rec in read_cryptofeed_v1(root / "binance" / ws_file):
        if rec.kind != "recv":
            continue
        msg = orjson.loads(rec.data)
        data = msg.get("data") if isinstance(msg, dict) else None
        if isinstance(data, dict) and data.get("e") == "depthUpdate":
            recorded.append((rec.ts, rec.data, msg))
    snapshots: dict[str, Snapshot] = {}
    snapshot_ts: list[tuple[float, str]] = []
    for rec in read_cryptofeed_v1(root / "binance" / http_file):
        if rec.kind == "http" and "/depth" in (rec.url or ""):
            symbol = parse_qs(urlsplit(rec.url).query)["symbol"][0]
            body = orjson.loads(rec.data)
            levels = len(body["bids"]) + len(body["asks"])
            snapshots[symbol] = Snapshot(symbol, rec.data, int(body["lastUpdateId"]), levels)
            snapshot_ts.append((rec.ts, symbol))

    # Per symbol: the recording must be one contiguous chain, or shifted repetitions would not be.
    first: dict[str, dict] = {}
    last: dict[str, dict] = {}
    for _, _, msg in recorded:
        data = msg["data"]
        sym = data["s"]
        if sym in last and _prev_id(data, market) != int(last[sym]["u"]):
            raise ValueError(f"{name}: {sym} is not contiguous at U={data['U']} (prev u={last[sym]['u']})")
        first.setdefault(sym, data)
        last[sym] = data
    id_span = {s: int(last[s]["u"]) - _prev_id(first[s], market) for s in last}
    t_first = min(int(d["E"]) for d in first.values())
    t_last = max(int(d["E"]) for d in last.values())
    ts_span = t_last - t_first + 100

    frames: list[str] = []
    schedule: list[tuple[str, str]] = []
    frame_levels = applied = applied_frames = 0
    pending_snaps = sorted(snapshot_ts)
    for rep in range(reps):
        for ts, text, msg in recorded:
            if rep == 0:
                while pending_snaps and pending_snaps[0][0] <= ts:
                    schedule.append(("rest", pending_snaps.pop(0)[1]))
                out = text
            else:
                data = dict(msg["data"])
                shift = rep * id_span[data["s"]]
                data["U"] = int(data["U"]) + shift
                data["u"] = int(data["u"]) + shift
                if "pu" in data:
                    data["pu"] = int(data["pu"]) + shift
                data["E"] = int(data["E"]) + rep * ts_span
                if "T" in data:
                    data["T"] = int(data["T"]) + rep * ts_span
                out = orjson.dumps({"stream": msg["stream"], "data": data}).decode()
            frames.append(out)
            schedule.append(("ws", out))
            data = msg["data"]
            n = len(data["b"]) + len(data["a"])
            frame_levels += n
            snap = snapshots.get(data["s"])
            if rep > 0 or (snap is not None and _applies_after_snapshot(data, snap, market)):
                applied += n
                applied_frames += 1
        if rep == 0:
            schedule.extend(("rest", s) for _, s in pending_snaps)
            pending_snaps = []
    suffix = recorded[0][2]["stream"].split("@", 1)[1]
    return BinanceCorpus(
        name, market, reps, frames, snapshots, schedule, sorted(last), frame_levels, applied, applied_frames, suffix,
        [(ts, text) for ts, text, _ in recorded],
    )  # fmt: skip


def _applies_after_snapshot(data: dict, snap: Snapshot, market: str) -> bool:
    """Binance rule: spot drops `u <= lastUpdateId`; USD-M drops `u < lastUpdateId` (the straddling
    diff, `U <= lastUpdateId <= u`, is applied)."""
    u = int(data["u"])
    return u > snap.last_update_id if market == "spot" else u >= snap.last_update_id


def binance_instruments_json(corpus: BinanceCorpus) -> list[dict]:
    """exchangeInfo-shaped entries for the corpus's symbols (spot: the committed reference file; USD-M:
    base = symbol minus its `USDT` quote, which holds for the four recorded contracts)."""
    if corpus.market == "spot":
        entries = json.loads((INSTRUMENTS / "binance_spot.json").read_text())["symbols"]
        return [e for e in entries if e["symbol"] in corpus.symbols]
    out = []
    for sym in corpus.symbols:
        if not sym.endswith("USDT"):
            raise ValueError(f"cannot derive base/quote of {sym}")
        out.append({"symbol": sym, "status": "TRADING", "baseAsset": sym[:-4], "quoteAsset": "USDT"})
    return out


# ---------------------------------------------------------------------------------------- other venues
def _v3_book_frames(path: Path, wanted: tuple[str, ...], with_address: bool = False) -> list:
    """Received frames containing one of `wanted`; with `with_address`, (connection URL, frame) pairs."""
    out: list = []
    address: dict[str, str] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            rec = orjson.loads(line)
            if rec.get("t") == "connect":
                address[rec["conn"]] = rec["addr"]
            elif rec.get("t") == "recv" and any(w in rec["data"] for w in wanted):
                out.append((address.get(rec["conn"], ""), rec["data"]) if with_address else rec["data"])
    return out


def bybit_book_frames(root: Path = EXTERNAL_RECORDINGS) -> list[tuple[str, str]]:
    """Bybit v5 order-book frames with the URL of the connection they came on (linear or spot: the
    payloads do not say which market they belong to)."""
    path = root / "bybit" / "cryptofeed_v3_BYBIT.jsonl"
    return _v3_book_frames(path, ('"topic":"orderbook.',), with_address=True)


def _v1_book_frames(path: Path, wanted: str) -> list[str]:
    """Data frames only: subscription acks (`"event":...` objects) mention the channel too."""
    return [
        r.data
        for r in read_cryptofeed_v1(path)
        if r.kind == "recv" and wanted in r.data and '"event"' not in r.data[:200]
    ]


def coinbase_snapshot_frames(root: Path = EXTERNAL_RECORDINGS) -> list[str]:
    """The two full-book `l2_data` snapshots (BTC-USD, ETH-USD) that the update frames continue."""
    frames = _v3_book_frames(root / "coinbase" / "cryptofeed_v3_COINBASE.jsonl", ('"l2_data"',))
    return [f for f in frames if '"type":"snapshot"' in f[:300]]


def other_venue_frames(root: Path = EXTERNAL_RECORDINGS) -> dict[str, list[str]]:
    """Book frames of the venues we have no connector for yet, exactly as recorded (one repetition).

    Coinbase's two full-book snapshots (8 MB and 4 MB) are left out: they would dominate the bytes."""
    coinbase = [
        f
        for f in _v3_book_frames(root / "coinbase" / "cryptofeed_v3_COINBASE.jsonl", ('"l2_data"',))
        if '"type":"snapshot"' not in f[:300]
    ]
    return {
        "bybit-v5-orderbook": [frame for _, frame in bybit_book_frames(root)],
        "coinbase-l2-updates": coinbase,
        "okx-books": _v1_book_frames(root / "okx" / "cryptofeed_OKX.ws.1.0", '"channel":"books"'),
        "kraken-v1-book": _v1_book_frames(root / "kraken" / "cryptofeed_KRAKEN.ws.50.0", '"book-'),
    }
