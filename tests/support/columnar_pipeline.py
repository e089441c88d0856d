"""The Binance delta path from socket reads to the delta table's Arrow rows, without sockets or Bytewax:
the production `BinanceClient` (`_on_frames`, duplicate filter, id-only sequencer, hand-over), the source
partition's offsets (`ShardPartition.next_batch`), `group_runs`, `PositionedLogic(VenueDeltaLogic)` per
key, and `TABLES[...].to_arrow` on the rows, in the sink's conversion chunks. Run once with the client's
columnar read path on and once off (the per-frame reference), it shows whether both commit the same rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

import connectors.binance.client as client_module
from connectors.binance.client import SPOT, USDM, BinanceClient
from connectors.binance.parsing import Instrument, parse_depth_snapshot
from connectors.handoff import HandoffQueue
from connectors.signals import END
from connectors.source import ShardPartition
from cryptoflow.config import Settings
from cryptoflow.level_block import DepthRead
from cryptoflow.model import GapRow
from cryptoflow.schemas import TABLES
from operators.positioned import PositionedBatch, PositionedLogic
from operators.runs import group_runs
from operators.sequencing.binance import spot_verdict, usdm_verdict
from operators.sequencing.sync import DiffSync
from operators.venue_delta import VenueDeltaLogic

# A schedule entry: ("read", [frames...]) is one socket read; ("rest", (exchange symbol, body)) a REST
# snapshot arriving at that point (what `_fetch_snapshot` puts in the stream).
Schedule = list[tuple[str, Any]]


@dataclass
class PipelineResult:
    delta: pa.Table
    gaps: pa.Table
    snapshot_requests: list[tuple[str, str]]
    duplicates_dropped: int
    bad_frames: list[str] = field(default_factory=list)
    depth_reads: int = 0  # hand-over items that were column reads (the fast path was taken)

    def rows(self) -> list[dict]:
        keys = ["symbol", "source_offset", "is_snapshot", "side", "price", "qty"]
        return sorted(self.delta.to_pylist(), key=lambda r: tuple(str(r[k]) for k in keys))

    def gap_rows(self) -> list[dict]:
        return sorted(self.gaps.to_pylist(), key=lambda r: (r["symbol"], r["source_offset"]))


class _Idle:
    def start(self) -> None:
        pass

    def stop(self, timeout: float = 5.0) -> None:
        pass


def run_pipeline(
    schedule: Iterable[tuple[str, Any]],
    instruments: dict[str, Instrument],
    market: str = SPOT,
    *,
    columnar: bool,
    batch_size: int = 7,
    convert_every: int = 50,
    serve_snapshots: bool = False,
    monkeypatch: Any,
) -> PipelineResult:
    """The rows both tables would get. `batch_size` is the partition's batch (Bytewax items per batch),
    `convert_every` the row items per `to_arrow` call (the sink converts in chunks). `serve_snapshots`:
    answer each resync request (gap, snapshot too old) before the next read with a snapshot that the symbol's next diff in
    the schedule straddles (the book recovers, and the fast path can take over again)."""
    settings = Settings()
    cfg = settings.exchanges.binance.spot if market == SPOT else settings.exchanges.binance.usdm
    symbols = sorted(instruments)
    out = HandoffQueue(10**7)
    client = BinanceClient(market, cfg, settings.connector, symbols, {"depth"}, 0, out, columnar=columnar)
    assert client.columnar is columnar
    verdict = spot_verdict if market == SPOT else usdm_verdict
    client.instruments = dict(instruments)
    client.syncs = {s: DiffSync(verdict) for s in symbols}
    requests: list[tuple[str, str]] = []
    client._request_snapshot = lambda symbol, reason, delay_s=0.0: requests.append((symbol, reason))
    bad: list[str] = []
    client._bad_frame = lambda raw, exc: bad.append(exc.reason)
    clock = itertools.count(1_700_000_000_000_000, 1000)  # the same ingest stamp per read in both runs
    stamp = [0]
    monkeypatch.setattr(client_module, "now_us", lambda: stamp[0])
    schedule = list(schedule)
    served = 0
    for i, (kind, item) in enumerate(schedule):
        stamp[0] = next(clock)
        if kind == "read":
            client._on_frames(list(item))
        else:  # mirror of BinanceClient._fetch_snapshot
            symbol, body = item
            event = parse_depth_snapshot(body, client.instruments[symbol], 0, stamp[0])
            client.syncs[symbol].on_snapshot(None, event.seq)
            client._put(event)
        while serve_snapshots and served < len(requests):  # answered before the next read
            symbol, reason = requests[served]
            served += 1
            if reason == "buffered":  # the schedule brings the first snapshots itself
                continue
            body = _straddled_snapshot(schedule[i + 1 :], symbol, market)
            if body is not None:
                stamp[0] = next(clock)
                event = parse_depth_snapshot(body, client.instruments[symbol], 0, stamp[0])
                client.syncs[symbol].on_snapshot(None, event.seq)
                client._put(event)
    out.put(END)
    depth_reads = sum(1 for item in out._items if item.__class__ is DepthRead)

    stream = "spot_delta" if market == SPOT else "futures_delta"
    part = ShardPartition("shard-00000", [_Idle()], out, 1_000, batch_size, 1)
    book = settings.book
    logics: dict[str, PositionedLogic] = {}

    def build(_resume: Any = None) -> VenueDeltaLogic:
        return VenueDeltaLogic(stream, book.depth_cap, book.max_buffered_diffs, None)

    delta_rows: list[Any] = []
    gap_rows: list[Any] = []
    while True:
        try:
            batch = part.next_batch()
        except StopIteration:
            break
        for run in group_runs(batch):
            logic = logics.get(run.key)
            if logic is None:
                logic = logics[run.key] = PositionedLogic(build(), GapRow, rebuild=build)
            batches, _ = logic.on_item(run)
            for positioned in batches:
                assert isinstance(positioned, PositionedBatch)
                assert positioned.offsets == sorted(positioned.offsets)
                (gap_rows if positioned.split else delta_rows).extend(positioned.rows)
    table = TABLES[stream]
    chunks = [
        table.to_arrow(delta_rows[i : i + convert_every]) for i in range(0, len(delta_rows), convert_every)
    ]
    delta = pa.concat_tables(chunks) if chunks else table.to_arrow([])
    return PipelineResult(
        delta, TABLES["gaps"].to_arrow(gap_rows), requests, client.filter.dropped, bad, depth_reads
    )


def _straddled_snapshot(rest: list[tuple[str, Any]], symbol: str, market: str) -> str | None:
    for kind, item in rest:
        if kind != "read":
            continue
        for raw in item:
            try:
                data = orjson.loads(raw)["data"]
            except Exception:
                continue
            if isinstance(data, dict) and data.get("s") == symbol and isinstance(data.get("U"), int):
                first = data["U"]
                return snapshot_body(first - 1 if market == SPOT else first, [["95.00", "1"]], [["105.00", "2"]],
                                     None if market == SPOT else 1_700_000_000_000)  # fmt: skip
    return None


def depth_frame(symbol: str, first: int, last: int, prev: int | None, ts: int, bids, asks) -> str:
    data: dict[str, Any] = {"e": "depthUpdate", "E": ts, "s": symbol, "U": first, "u": last}
    if prev is not None:
        data["pu"] = prev
    data.update(b=bids, a=asks)
    return orjson.dumps({"stream": f"{symbol.lower()}@depth@100ms", "data": data}).decode()


def snapshot_body(last_update_id: int, bids, asks, ts: int | None = None) -> str:
    body: dict[str, Any] = {"lastUpdateId": last_update_id, "bids": bids, "asks": asks}
    if ts is not None:
        body["E"] = ts
    return orjson.dumps(body).decode()


__all__ = ["SPOT", "USDM", "PipelineResult", "depth_frame", "run_pipeline", "snapshot_body"]
