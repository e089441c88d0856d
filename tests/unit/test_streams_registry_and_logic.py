"""The stream registry, the delta logic for venues with WebSocket snapshots, liquidation/funding rows."""

from decimal import Decimal

import pytest

from connectors import registry
from cryptoflow.config import load_settings
from cryptoflow.model import GapRow, Kind, LevelBatch, Liquidation, RawEvent
from cryptoflow.schemas import TABLES
from operators.derivatives import liquidation_logic, liquidation_row
from operators.venue_delta import VenueDeltaLogic


def test_every_stream_has_a_binance_source_and_unknown_streams_are_refused():
    for stream in ("ticks", "spot_delta", "spot_ob"):
        assert "binance_spot" in registry.offered(stream)
    for stream in ("ticks", "futures_delta", "futures_ob", "liquidations", "funding"):
        assert "binance_usdm" in registry.offered(stream)
    with pytest.raises(ValueError, match="unknown stream"):
        registry.register("orderbook", "x", lambda settings: None)


def test_sources_for_only_configured_venues():
    spot_only = load_settings(environ={"CRYPTOFLOW_EXCHANGES__BINANCE__USDM__ENABLED": "false"})
    assert [name for name, _ in registry.sources_for(spot_only, "ticks")] == ["binance_spot"]
    assert registry.sources_for(spot_only, "funding") == []
    dev = load_settings(environ={})  # dev config: Binance spot and USD-M on the simulator
    assert [name for name, _ in registry.sources_for(dev, "ticks")] == ["binance_spot", "binance_usdm"]
    assert [name for name, _ in registry.sources_for(dev, "futures_ob")] == ["binance_usdm"]
    no_symbols = load_settings(environ={"CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__SYMBOLS": "[]"})
    assert [name for name, _ in registry.sources_for(no_symbols, "ticks")] == ["binance_usdm"]


def bybit(kind: Kind, u: int, bids, asks) -> RawEvent:
    return RawEvent("bybit", "perp", "BTC-USDT", "BTCUSDT", kind, 1000 * u, 0, 0, u, (bids, asks), seq=u)


def test_ws_snapshot_venue_deltas_emit_applied_messages_and_gap_rows():
    logic = VenueDeltaLogic("futures_delta", depth_cap=100, max_buffered=10)
    out = []
    for ev in (
        bybit(Kind.DEPTH_DIFF, 1, [["9", "1"]], []),  # before any snapshot: nothing to continue
        bybit(Kind.DEPTH_SNAPSHOT, 2, [["10", "1"]], [["11", "2"]]),
        bybit(Kind.DEPTH_DIFF, 3, [["10", "0"], ["9.5", "3"]], []),
        bybit(Kind.DEPTH_DIFF, 5, [["9", "1"]], []),  # u jumped 3 -> 5: gap
        bybit(Kind.DEPTH_DIFF, 6, [["8", "1"]], []),  # book invalid: dropped
        bybit(Kind.DEPTH_SNAPSHOT, 7, [["10", "4"]], [["11", "5"]]),
    ):
        rows, _ = logic.on_item(ev)
        out.append(rows)
    assert out[0] == [] and out[4] == []
    (snap,) = out[1]
    assert isinstance(snap, LevelBatch) and snap.is_snapshot and snap.prices == ["10", "11"]
    (delta,) = out[2]
    assert not delta.is_snapshot and delta.prices == ["10", "9.5"] and delta.qtys == ["0", "3"]
    (gap,) = out[3]
    assert isinstance(gap, GapRow) and (gap.seq_from, gap.seq_to, gap.reason) == (3, 5, "sequence")
    assert out[5][0].is_snapshot and out[5][0].seq == 7
    restored = VenueDeltaLogic("futures_delta", 100, 10, logic.snapshot())
    rows, _ = restored.on_item(bybit(Kind.DEPTH_DIFF, 8, [["10", "1"]], []))
    assert rows[0].seq == 8


def liq(seq: int) -> RawEvent:
    return RawEvent("binance", "perp", "BTC-USDT", "BTCUSDT", Kind.LIQUIDATION, seq * 1000, 1, 2, seq,
                    Liquidation("long", "100.5", "2", "100.4", "2", "FILLED"), seq=seq)  # fmt: skip


def test_liquidations_drop_repeats_and_survive_a_restart():
    logic = liquidation_logic(None)
    assert len(logic.on_item(liq(5))[0]) == 1
    assert logic.on_item(liq(5))[0] == []  # the overlapping connection's copy
    resumed = liquidation_logic(logic.snapshot())
    assert resumed.on_item(liq(4))[0] == [] and len(resumed.on_item(liq(6))[0]) == 1


def test_liquidation_and_funding_tables_hold_exact_decimals():
    table = TABLES["liquidations"].to_arrow([liquidation_row(liq(7))])
    row = table.to_pylist()[0]
    assert row["side"] == "long" and row["price"] == Decimal("100.5") and row["avg_price"] == Decimal("100.4")
    assert row["source_offset"] == 7 and table.schema == TABLES["liquidations"].arrow_schema
    assert {f.name for f in TABLES["funding"].arrow_schema} >= {
        "funding_rate", "next_funding_ts", "mark_price", "index_price", "estimated_settle_price",
    }  # fmt: skip


class RacingCatalog:
    """A catalog where another process created the namespace between our check and our INSERT."""

    def __init__(self) -> None:
        self.created = []

    def load_table(self, identifier):
        from pyiceberg.exceptions import NoSuchTableError

        if identifier not in self.created:
            raise NoSuchTableError(identifier)
        return identifier

    def create_namespace(self, namespace):
        raise RuntimeError("UNIQUE constraint failed: iceberg_namespace_properties")  # SqlCatalog's race

    def namespace_exists(self, namespace):
        return True

    def create_table(self, identifier, **kwargs):
        self.created.append(identifier)
        return identifier


def test_ensure_table_survives_a_concurrent_namespace_creation():
    from connectors.iceberg.catalog import ensure_table
    from cryptoflow.config import ParquetConfig

    catalog = RacingCatalog()
    assert ensure_table(catalog, "cryptoflow", TABLES["funding"], ParquetConfig()) == (
        "cryptoflow",
        "funding",
    )
