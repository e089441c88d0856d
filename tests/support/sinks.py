"""Shared helpers for sink tests: a real SqlCatalog ticks table and positioned trade rows."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

from connectors.iceberg.catalog import ensure_table, load_catalog
from connectors.iceberg.sink import IcebergSinkPartition
from cryptoflow.config import CatalogConfig, ParquetConfig, SinkConfig
from cryptoflow.model import TradeRow
from cryptoflow.schemas import TABLES
from operators.positioned import Positioned

TICKS = TABLES["ticks"]
FAST = SinkConfig(commit_attempts=5, retry_initial_s=0.001, retry_max_s=0.01)
WRITER = "ticks/ticks.iceberg/ticks-committer"


def catalog_cfg(tmp_path) -> CatalogConfig:
    """An embedded SqlCatalog with its warehouse in `tmp_path`."""
    return CatalogConfig(uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=str(tmp_path / "wh"))


def make_ticks_catalog(tmp_path):
    cat = load_catalog(catalog_cfg(tmp_path))
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


SYMBOLS = ["BTC-USDT", "ETH-USDT", "NKN-USDT", "LRC-BTC"]


def rows(n: int, seed: int = 7) -> list[Positioned]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        symbol = rng.choice(SYMBOLS)
        price = f"{rng.randint(1, 90000)}.{rng.randint(0, 10**8 - 1):08d}"
        qty = f"0.{rng.randint(1, 10**8 - 1):08d}"
        ts = 1_700_000_000_000_000 + rng.randint(0, 3_600_000_000)  # shuffled times within an hour
        row = TradeRow(
            "binance", "spot", symbol, symbol.replace("-", ""), ts, ts + 5, str(i), price, qty,
            rng.choice(["buy", "sell"]), 0, i,
        )  # fmt: skip
        out.append(Positioned(0, i, row))
    return out


def expected_aggregates(data: list[Positioned]) -> list[tuple]:
    """(symbol, count, sum(qty), min(price), max(price)) computed in Python from the rows written."""
    expected: dict = {}
    for p in data:
        r = p.row
        n, qty, lo, hi = expected.get(r.symbol, (0, Decimal(0), None, None))
        price = Decimal(r.price)
        expected[r.symbol] = (
            n + 1, qty + Decimal(r.qty), price if lo is None else min(lo, price), price if hi is None else max(hi, price)
        )  # fmt: skip
    return [(s, *expected[s]) for s in sorted(expected)]


def commit_epoch(p: IcebergSinkPartition):
    """End an epoch as Bytewax does (`snapshot()`) and wait for its background commit, so the test can
    read the table; raises a failed background commit."""
    state = p.snapshot()
    p.drain()
    return state
