"""Parsers' contracts on bad input, the capture format round trip, and the Bytewax-facing logic's rows."""

from __future__ import annotations

import io
import json

import pytest

from connectors.bybit.parsing import BybitParser
from connectors.coinbase.parsing import CoinbaseParser, rfc3339_us
from connectors.kraken.parsing import KrakenV1Parser, KrakenV2Parser
from connectors.okx.parsing import OkxParser, instrument_of
from connectors.parse_errors import ParseError
from connectors.recordings.capture import CaptureWriter, read_capture
from connectors.recordings.cryptofeed_v1 import read_cryptofeed_v1
from connectors.recordings.cryptofeed_v3 import read_cryptofeed_v3
from connectors.recordings.records import RecordingFormatError
from cryptoflow.model import DiffLevels, GapRow, Kind, LevelBatch, Market, RawEvent
from cryptoflow.verify import verify_paths
from operators.delta_sync import DeltaSyncLogic
from operators.sequencing.binance import spot_verdict
from tests.support import book_truth as truth


@pytest.mark.parametrize("parser", [BybitParser(Market.SPOT), OkxParser(), CoinbaseParser(), KrakenV1Parser(),
                                    KrakenV2Parser()], ids=lambda p: type(p).__name__)  # fmt: skip
def test_malformed_frames_raise_parse_error_with_a_reason(parser):
    with pytest.raises(ParseError) as err:
        parser.parse("{not json", 0)
    assert err.value.reason == "malformed_json"


def test_okx_instrument_kinds():
    assert instrument_of("UNI-USD-SWAP") == (Market.PERP, "UNI-USD")
    assert instrument_of("BTC-USD-220527") == (Market.FUTURE, "BTC-USD")
    assert instrument_of("BTC-USDT") == (Market.SPOT, "BTC-USDT")


def test_okx_error_event_is_a_parse_error():
    with pytest.raises(ParseError) as err:
        OkxParser().parse('{"event":"error","code":"60018","msg":"bad instId"}', 0)
    assert err.value.reason == "server_error"


def _cb(seq: int, product: str = "BTC-USD", kind: str = "update") -> str:
    return json.dumps({"channel": "l2_data", "timestamp": "2026-08-09T21:05:48.483587501Z", "sequence_num": seq,
                       "events": [{"type": kind, "product_id": product, "updates": [
                           {"side": "bid", "event_time": "x", "price_level": "1.5", "new_quantity": "2"},
                           {"side": "offer", "event_time": "x", "price_level": "1.6", "new_quantity": "0"}]}]})  # fmt: skip


def test_coinbase_connection_gap_invalidates_every_product_and_duplicates_are_dropped():
    p = CoinbaseParser()
    assert [e.kind for e in p.parse(_cb(0, "BTC-USD", "snapshot"), 0)] == [Kind.DEPTH_SNAPSHOT]
    assert [e.kind for e in p.parse(_cb(1, "ETH-USD", "snapshot"), 0)] == [Kind.DEPTH_SNAPSHOT]
    assert p.parse(_cb(1), 0) == [] and p.dropped == 1  # repeated sequence_num
    events = p.parse(_cb(5), 0)  # 2..4 lost
    gaps = [e for e in events if e.kind is Kind.CONNECTION_GAP]
    assert {e.symbol for e in gaps} == {"BTC-USD", "ETH-USD"}
    assert all((e.first_seq, e.seq) == (2, 4) for e in gaps)
    assert events[-1].kind is Kind.DEPTH_DIFF and events[-1].payload == ([["1.5", "2"]], [["1.6", "0"]])


def test_rfc3339_keeps_microseconds_without_floats():
    assert rfc3339_us("2026-08-09T21:05:48.483587501Z") == 1786309548483587
    assert rfc3339_us("1970-01-01T00:00:01Z") == 1_000_000


def test_kraken_v2_keeps_number_text():
    raw = truth.KRAKEN_V2_VECTOR.read_text()
    (ev,) = KrakenV2Parser().parse(raw, 0)
    assert ev.payload[0][1] == ["0.12290", "8136.33288180"] and ev.checksum == 2375857985


def test_v3_reader_attaches_connection_urls():
    records = list(read_cryptofeed_v3(truth.BYBIT_V3))
    recv = [r for r in records if r.kind == "recv"]
    assert len(recv) == 3227 and all(
        r.url and r.url.startswith("wss://stream.bybit.com/v5/public/") for r in recv
    )


def test_capture_round_trip_verifies_like_the_original(tmp_path):
    """Binance spot REST + WS merged into one capture file (the order a connector sees them) verifies
    exactly like the two cryptofeed files."""
    from cryptoflow.verify import merged_records

    out = io.StringIO()
    writer = CaptureWriter(out, "binance", 0)
    for r in merged_records(truth.BINANCE_SPOT):
        if r.kind == "http":
            writer.http("rest", round(r.ts * 1e6), r.url or "", r.data)
        elif r.kind == "connect":
            writer.connect("ws-0", round(r.ts * 1e6), r.url or "")
        elif r.kind == "recv":
            writer.recv("ws-0", round(r.ts * 1e6), r.data)
    path = tmp_path / "binance.capture.jsonl"
    path.write_text(out.getvalue())
    assert sum(r.kind == "recv" for r in read_capture(path)) == sum(
        r.kind == "recv" for r in read_cryptofeed_v1(truth.BINANCE_SPOT[1])
    )
    assert verify_paths([path]).report() == verify_paths(truth.BINANCE_SPOT).report()


def test_capture_reader_rejects_a_file_without_header(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"t": "recv", "conn": "a", "ts_us": 1, "data": "{}"}\n')
    with pytest.raises(RecordingFormatError, match=r"x\.jsonl:1"):
        list(read_capture(path))


def _diff(first: int, last: int, ts: int) -> RawEvent:
    return RawEvent("binance", "spot", "NKN-USDT", "NKNUSDT", Kind.DEPTH_DIFF, ts, ts, 0, last,
                    ([["1.0", "1"]], [["2.0", "1"]]), first_seq=first, seq=last)  # fmt: skip


def test_delta_sync_emits_a_gap_row_where_the_chain_breaks():
    logic = DeltaSyncLogic(spot_verdict, 100, stream="spot_delta")
    snap = RawEvent("binance", "spot", "NKN-USDT", "NKNUSDT", Kind.DEPTH_SNAPSHOT, None, 0, 0, 0,
                    ([["1.0", "5"]], [["2.0", "5"]]), seq=10)  # fmt: skip
    assert logic.on_item(snap)[0] == []
    out, _ = logic.on_item(_diff(9, 11, 1000))
    assert [type(r) for r in out] == [LevelBatch, DiffLevels]  # snapshot, straddling diff (the event itself)
    out, _ = logic.on_item(_diff(12, 12, 2000))
    out, _ = logic.on_item(_diff(14, 15, 3000))  # 13 is missing
    (gap,) = out
    assert isinstance(gap, GapRow)
    assert (gap.seq_from, gap.seq_to, gap.time_from_us, gap.time_to_us, gap.reason, gap.stream) == (
        12,
        15,
        2000,
        3000,
        "sequence",
        "spot_delta",
    )


def test_malformed_levels_invalidate_the_book_without_raising():
    from operators.book.tracker import BYBIT, BookTracker

    tracker = BookTracker(BYBIT)
    snap = RawEvent("bybit", "spot", "X-Y", "XY", Kind.DEPTH_SNAPSHOT, 1000, 0, 0, 0,
                    ([["1.0", "1"]], [["2.0", "1"]]), seq=1)  # fmt: skip
    tracker.on_event(snap)
    bad = RawEvent(
        "bybit", "spot", "X-Y", "XY", Kind.DEPTH_DIFF, 2000, 0, 0, 1, ([["1.0"]], [[2.5, None]]), seq=2
    )
    step = tracker.on_event(bad)
    assert not tracker.valid and step.resync and step.rows == []
    assert [g.reason for g in step.gaps] == ["bad_event"] and tracker.counters.bad_events == 1
    tracker.on_event(snap)  # the resync snapshot makes it valid again
    assert tracker.valid and tracker.counters.resyncs == 1
