"""The pieces that let a `cryptoflow capture` of any venue replay: instrument maps written back as the
venue's REST body (read back by the clients' own parsers), the per-source journal reader, and the merge
of frames several connections received."""

from __future__ import annotations

import orjson
import pytest

from connectors.bybit.instruments import parse_instruments_page
from connectors.coinbase.instruments import parse_products
from connectors.journal import JournalWriter, RecordKind
from connectors.kraken.instruments import parse_asset_pairs
from connectors.recordings.instrument_bodies import bybit_instruments, coinbase_products, kraken_asset_pairs
from connectors.recordings.journal_capture import read_journal_capture, sources_of
from connectors.recordings.records import Record, RecordingFormatError
from cryptoflow.model import Market
from cryptoflow.simulator.connections import merge_connections


def test_bybit_body_reads_back_as_the_journaled_map():
    linear = {"BTCUSDT": (Market.PERP, "BTC-USDT"), "ETHUSDC": (Market.PERP, "ETH-USDC")}
    found, cursor = parse_instruments_page(bybit_instruments("linear", linear), "linear")
    assert cursor is None
    assert {s: (i.market, i.symbol) for s, i in found.items()} == {s: (m, p) for s, (m, p) in linear.items()}
    spot, _ = parse_instruments_page(bybit_instruments("spot", {"SOLUSDT": ("spot", "SOL-USDT")}), "spot")
    assert spot["SOLUSDT"].market == Market.SPOT and spot["SOLUSDT"].symbol == "SOL-USDT"


def test_coinbase_and_kraken_bodies_read_back_as_the_journaled_map():
    products = {"BTC-USD": ("spot", "BTC-USD"), "ETH-EUR": ("spot", "ETH-EUR")}
    assert parse_products(coinbase_products("", products)) == {k: v[1] for k, v in products.items()}
    pairs = {"BTC/USD": ("spot", "BTC-USD"), "SOL/EUR": ("spot", "SOL-EUR")}
    assert parse_asset_pairs(kraken_asset_pairs("", pairs)) == {k: v[1] for k, v in pairs.items()}


def _journal(directory, records):
    writer = JournalWriter(directory, "never", 1000, 1 << 20, name="test")
    for kind, meta, payload, ts in records:
        writer.append(kind, meta, payload, ts)
    writer.close()


def test_subscribe_venue_journal_reads_as_connections_with_urls_and_instrument_bodies(tmp_path):
    _journal(tmp_path / "bybit" / "shard-00000", [
        (RecordKind.INSTRUMENTS, "linear", orjson.dumps({"BTCUSDT": ["perp", "BTC-USDT"]}), 1),
        (RecordKind.WS_FRAME, "linear|run.1.1", b'{"topic":"a"}', 2),
        (RecordKind.WS_FRAME, "spot|run.2.1", b'{"topic":"b"}', 3),
        (RecordKind.WS_FRAME, "linear|run.1.2", b'{"topic":"c"}', 4),  # reconnect: a new connection
        (RecordKind.EVENTS, "linear", b"[]", 5),
    ])  # fmt: skip
    _journal(tmp_path / "bybit" / "shard-00001", [
        (RecordKind.INSTRUMENTS, "linear", orjson.dumps({"ETHUSDT": ["perp", "ETH-USDT"]}), 6),
    ])  # fmt: skip
    records = list(read_journal_capture(tmp_path))
    recv = [(r.url, r.data) for r in records if r.kind == "recv"]
    assert recv == [
        ("wss://stream.bybit.com/v5/public/linear", '{"topic":"a"}'),
        ("wss://stream.bybit.com/v5/public/spot", '{"topic":"b"}'),
        ("wss://stream.bybit.com/v5/public/linear", '{"topic":"c"}'),
    ]
    assert len({r.conn for r in records if r.kind == "recv"}) == 3
    assert sum(r.kind == "connect" for r in records) == 3
    http = [r for r in records if r.kind == "http"]
    assert [r.url for r in http] == ["https://api.bybit.com/v5/market/instruments-info?category=linear"] * 2
    last, _ = parse_instruments_page(http[-1].data, "linear")
    assert sorted(last) == ["BTCUSDT", "ETHUSDT"]  # every shard's instruments in the last body
    assert sorted(sources_of(tmp_path)) == ["bybit"]


def test_journal_under_an_unknown_source_is_a_clear_error(tmp_path):
    _journal(tmp_path / "somewhere" / "shard-00000", [(RecordKind.WS_FRAME, "x", b"{}", 1)])
    with pytest.raises(RecordingFormatError, match="cannot tell which venue"):
        list(read_journal_capture(tmp_path))


def _recv(conn: str, text: str) -> Record:
    return Record("recv", 0.0, text, conn=conn)


def test_merge_keeps_shared_frames_once_and_every_connection_order():
    # the true order a venue sent: h1 a1 b1 h2 a2 h3 b2 (h* to both connections, a* to A, b* to B)
    a = ["h1", "a1", "h2", "a2", "h3"]
    b = ["h1", "b1", "h2", "h3", "b2"]
    merged = [r.data for r in merge_connections([*(_recv("A", t) for t in a), *(_recv("B", t) for t in b)],
                                                key=lambda r: r.data)]  # fmt: skip
    assert sorted(merged) == sorted(set(a) | set(b))
    for conn in (a, b):
        assert [t for t in merged if t in conn] == conn
    # a frame a connection received twice is two frames
    twice = merge_connections([_recv("A", "x"), _recv("A", "x"), _recv("B", "x")], key=lambda r: r.data)
    assert [r.data for r in twice] == ["x", "x"]
