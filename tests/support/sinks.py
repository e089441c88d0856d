"""Shared helpers for sink tests: a real SqlCatalog ticks table and positioned trade rows."""

from __future__ import annotations

from collections import Counter

from connectors.iceberg.catalog import ensure_table, load_catalog
from connectors.iceberg.sink import IcebergSinkPartition
from cryptoflow.config import CatalogConfig, ParquetConfig, SinkConfig
from cryptoflow.model import TradeRow
from cryptoflow.schemas import TABLES
from operators.positioned import Positioned

TICKS = TABLES["ticks"]
FAST = SinkConfig(commit_attempts=5, retry_initial_s=0.001, retry_max_s=0.01)
WRITER = "ticks/ticks.iceberg/ticks-committer"


def make_ticks_catalog(tmp_path):
    cfg = CatalogConfig(uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=str(tmp_path / "wh"))
    cat = load_catalog(cfg)
    ensure_table(cat, "cryptoflow", TICKS, ParquetConfig())
    return cat


def load(catalog):
    return catalog.load_table(("cryptoflow", "ticks"))


def trade(shard: int, offset: int, trade_id: int | None = None) -> Positioned:
    tid = str(trade_id if trade_id is not None else shard * 100_000 + offset)
    row = TradeRow(
        "binance", "spot", "BTC-USDT", "BTCUSDT", 1_700_000_000_000_000 + offset, 1_700_000_000_000_000,
        tid, "100.5", "0.25", "buy", shard, offset,
    )  # fmt: skip
    return Positioned(shard, offset, row)


def part(catalog, resume=None, **kw) -> IcebergSinkPartition:
    return IcebergSinkPartition(
        TICKS, load(catalog), WRITER, resume, FAST, reload=lambda: load(catalog), **kw
    )


def ids(catalog) -> Counter:
    return Counter(load(catalog).scan().to_arrow().column("trade_id").to_pylist())
