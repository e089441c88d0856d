"""The journal keeps what arrived, in order, with offsets that survive reopening, torn tails and
segment roll-over, and retention never deletes what a reader still needs."""

import os

import pytest

from connectors.journal import JournalReader, JournalWriter, RecordKind
from connectors.journal.segment import list_segments


def payloads(n: int, start: int = 0) -> list[bytes]:
    return [f'{{"n": {i}, "pad": "{"x" * (i % 50)}"}}'.encode() for i in range(start, start + n)]


@pytest.mark.parametrize("fsync", ["always", "interval", "never"])
def test_records_come_back_in_order_with_their_offsets(tmp_path, fsync):
    writer = JournalWriter(tmp_path, fsync=fsync, segment_bytes=1000)
    data = payloads(100)
    for i, p in enumerate(data):
        kind = RecordKind.REST_SNAPSHOT if i % 10 == 0 else RecordKind.WS_FRAME
        assert writer.append(kind, f"conn-{i % 3}", p, 1_000 + i) == i
    writer.close()
    assert len(list_segments(tmp_path)) > 3  # rolled over
    got = JournalReader(tmp_path).read(1000)
    assert [r.payload for r in got] == data
    assert [r.offset for r in got] == list(range(100))
    assert [r.ingest_us for r in got] == [1_000 + i for i in range(100)]
    assert got[10].kind is RecordKind.REST_SNAPSHOT and got[11].kind is RecordKind.WS_FRAME
    assert got[5].meta == "conn-2"


def test_reader_resumes_at_any_offset_across_segments(tmp_path):
    writer = JournalWriter(tmp_path, segment_bytes=700)
    data = payloads(60)
    for p in data:
        writer.append(RecordKind.WS_FRAME, "c", p, 0)
    for start in (0, 1, 17, 33, 59, 60):
        got = JournalReader(tmp_path, start).read(1000)
        assert [r.payload for r in got] == data[start:]


def test_reader_follows_a_live_writer_and_roll_overs(tmp_path):
    writer = JournalWriter(tmp_path, segment_bytes=500)
    reader = JournalReader(tmp_path, writer.next_offset)
    seen = []
    for chunk in range(5):
        for p in payloads(7, chunk * 7):
            writer.append(RecordKind.WS_FRAME, "c", p, 0)
        seen += reader.read(3)
        seen += reader.read(1000)
    assert [r.offset for r in seen] == list(range(35))
    assert reader.read(10) == []


def test_a_torn_tail_is_cut_and_offsets_continue(tmp_path):
    writer = JournalWriter(tmp_path)
    for p in payloads(10):
        writer.append(RecordKind.WS_FRAME, "c", p, 0)
    writer.close()
    (_, path) = list_segments(tmp_path)[-1]
    whole = path.stat().st_size
    with path.open("ab") as fh:  # a crash in the middle of the next record
        fh.write(b"\x40\x00\x00\x00garbage")
    reader = JournalReader(tmp_path)
    assert len(reader.read(100)) == 10  # the torn record is not returned
    reopened = JournalWriter(tmp_path)
    assert path.stat().st_size == whole
    assert reopened.next_offset == 10
    assert reopened.append(RecordKind.WS_FRAME, "c", b"after", 0) == 10
    got = JournalReader(tmp_path).read(100)
    assert [r.offset for r in got] == list(range(11)) and got[-1].payload == b"after"


def test_corrupted_record_is_not_returned(tmp_path):
    writer = JournalWriter(tmp_path)
    for p in payloads(3):
        writer.append(RecordKind.WS_FRAME, "c", p, 0)
    writer.close()
    (_, path) = list_segments(tmp_path)[-1]
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF  # flip a byte in the last record's payload
    path.write_bytes(bytes(raw))
    assert [r.offset for r in JournalReader(tmp_path).read(10)] == [0, 1]


def test_retention_deletes_only_whole_segments_below_the_offset(tmp_path):
    writer = JournalWriter(tmp_path, segment_bytes=400)
    for p in payloads(50):
        writer.append(RecordKind.WS_FRAME, "c", p, 0)
    firsts = [first for first, _ in list_segments(tmp_path)]
    cut = firsts[3] + 1  # inside the 4th segment
    removed = writer.delete_below(cut)
    assert removed == 3
    assert [first for first, _ in list_segments(tmp_path)] == firsts[3:]
    # everything from the cut on is still readable
    assert [r.offset for r in JournalReader(tmp_path, cut).read(100)] == list(range(cut, 50))
    # the segment being written is never deleted, whatever the offset
    writer.delete_below(10_000)
    assert list_segments(tmp_path)[-1][0] == firsts[-1]


def test_retention_respects_min_age(tmp_path):
    writer = JournalWriter(tmp_path, segment_bytes=400)
    for p in payloads(30):
        writer.append(RecordKind.WS_FRAME, "c", p, 0)
    assert writer.delete_below(10_000, min_age_s=3600) == 0
    old = list_segments(tmp_path)[0][1]
    os.utime(old, (1, 1))
    assert writer.delete_below(10_000, min_age_s=3600) == 1


def test_reader_reports_a_gap_when_records_were_deleted(tmp_path):
    from cryptoflow import metrics

    writer = JournalWriter(tmp_path, segment_bytes=400, name="gap-test")
    for p in payloads(30):
        writer.append(RecordKind.WS_FRAME, "c", p, 0)
    writer.delete_below(20)
    oldest = list_segments(tmp_path)[0][0]
    before = metrics.JOURNAL_MISSING.labels("gap-test")._value.get()
    reader = JournalReader(tmp_path, 2, name="gap-test")
    assert reader.next_offset == oldest
    assert metrics.JOURNAL_MISSING.labels("gap-test")._value.get() - before == oldest - 2
