import pytest

from connectors.recordings.cryptofeed_v1 import read_cryptofeed_v1
from connectors.recordings.records import RecordingFormatError
from tests.support.recording_truth import BINANCE_HTTP, BINANCE_WS


def test_reads_binance_ws_recording():
    records = list(read_cryptofeed_v1(BINANCE_WS))
    assert records[0].kind == "connect" and records[0].url.startswith("wss://stream.binance.com:9443/stream")
    assert sum(r.kind == "recv" for r in records) == 265
    assert records[1].ts == pytest.approx(1633998512.0633569)


def test_reads_http_snapshots():
    records = list(read_cryptofeed_v1(BINANCE_HTTP))
    assert [r.kind for r in records] == ["http"] * 4
    assert records[0].url.endswith("symbol=NKNUSDT&limit=1000") and records[0].data.startswith(
        '{"lastUpdateId"'
    )


def test_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "x.ws.1.0"
    path.write_text("wss://x <-> 1.0\n1.5: {}\ngarbage\n")
    with pytest.raises(RecordingFormatError, match=r"x\.ws\.1\.0:3"):
        list(read_cryptofeed_v1(path))
