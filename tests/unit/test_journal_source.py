"""The journal source partition: decodes after the journal with offsets from the journal, resumes
from (offset, decoder state), ends a replay at the journal's end, and deletes segments only once a
later resume point is durable (two snapshots later)."""

from __future__ import annotations

import json

from connectors.binance.decode import BinanceDecoder
from connectors.journal import JournalReader, JournalWriter, RecordKind
from connectors.journal.segment import list_segments
from connectors.source import JournalShardPartition
from cryptoflow.model import Kind

INFO = json.dumps({"symbols": [{"symbol": "BTCUSDT", "baseAsset": "BTC", "quoteAsset": "USDT"}]}).encode()


def diff(u: int) -> bytes:
    data = {"e": "depthUpdate", "E": 1_700_000_000_000 + u, "s": "BTCUSDT", "U": u, "u": u,
            "b": [["100.5", "1"]], "a": []}  # fmt: skip
    return json.dumps({"stream": "btcusdt@depth@100ms", "data": data}).encode()


def journal(tmp_path, n: int, segment_bytes: int = 10_000) -> JournalWriter:
    writer = JournalWriter(tmp_path, segment_bytes=segment_bytes)
    writer.append(RecordKind.INSTRUMENTS, "", INFO, 1)
    for u in range(1, n + 1):
        writer.append(RecordKind.WS_FRAME, "c1", diff(u), 10 + u)
    writer.append(RecordKind.WS_FRAME, "c1", b"{not json", 99)  # bad frame: counted, skipped
    writer.append(
        RecordKind.REST_SNAPSHOT, "BTCUSDT", json.dumps({"lastUpdateId": 5, "bids": [], "asks": []}), 100
    )
    return writer


def partition(tmp_path, start, state=None, writer=None, batch=1000) -> JournalShardPartition:
    reader = JournalReader(tmp_path, start)
    return JournalShardPartition("shard-00000", reader, BinanceDecoder(0, state), [], writer, batch, 5, 0.0)


def drain(part) -> list:
    out = []
    while True:
        try:
            out += part.next_batch()
        except StopIteration:
            return out


def test_events_carry_journal_offsets_and_ingest_times(tmp_path):
    journal(tmp_path, 10).close()
    events = drain(partition(tmp_path, None))
    assert [e.offset for e in events] == [*range(1, 11), 12]  # 0: instruments, 11: bad frame
    assert [e.seq for e in events[:10]] == list(range(1, 11))
    assert events[0].ingest_ts_us == 11 and events[-1].kind is Kind.DEPTH_SNAPSHOT


def test_resume_from_a_snapshot_decodes_identically(tmp_path):
    journal(tmp_path, 10).close()
    first = partition(tmp_path, None, batch=4)
    head = first.next_batch()
    saved = first.snapshot()
    assert saved.offset == 4 and "BTCUSDT" in saved.decoder
    tail = drain(first)
    resumed = drain(partition(tmp_path, saved.offset, saved.decoder))
    assert [(e.offset, e.seq, e.payload) for e in resumed] == [(e.offset, e.seq, e.payload) for e in tail]
    assert len(head) + len(tail) == 11


def test_segments_are_deleted_only_below_the_second_to_last_snapshot(tmp_path):
    writer = journal(tmp_path, 200, segment_bytes=2_000)
    part = partition(tmp_path, 0, writer=writer, batch=50)
    positions = []
    for _ in range(4):
        part.next_batch()
        positions.append(part.snapshot().offset)
        oldest = list_segments(tmp_path)[0][0]
        durable = positions[-3] if len(positions) >= 3 else 0
        assert oldest <= durable  # never beyond a resume point Bytewax may still use
    assert list_segments(tmp_path)[0][0] > 0  # and something was deleted
    # every record from the last durable point on is still there
    assert JournalReader(tmp_path, positions[-3]).read(1)[0].offset == positions[-3]
