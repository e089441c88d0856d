"""`cryptoflow demo`: the main job on embedded defaults.

Starts the local exchange simulators (the real Binance spot and Coinbase recordings replayed, Kraken v2
from the synthetic market), runs the `spot_delta`, `ticks` and `spot_ob` dataflows against them (real
`python -m bytewax.run` processes, real sockets), shows progress, and prints what landed in the local
Iceberg warehouse per table and exchange.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from connectors.iceberg.catalog import ensure_table, load_catalog
from cryptoflow.config import CatalogConfig, load_settings
from cryptoflow.paths import REPO_ROOT
from cryptoflow.schemas import TABLES
from cryptoflow.simulator.binance_spot import BinanceSpotVenue
from cryptoflow.simulator.coinbase import CoinbaseVenue
from cryptoflow.simulator.kraken import KrakenV2SyntheticVenue
from cryptoflow.simulator.server import ExchangeSimulator
from cryptoflow.simulator.synthetic.market import SyntheticMarket

FLOWS = ("spot_delta", "ticks", "spot_ob")
COINBASE_PRODUCTS = "[BTC-USD, ETH-USD]"  # the products of the Coinbase recording
KRAKEN_SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD", "ALGO-USD"]  # synthetic market


def kraken_demo_venue() -> KrakenV2SyntheticVenue:
    """3,000 book changes (20 ms of exchange time each) and a trade every 5, starting 3 s after the
    first flow connects so every flow has subscribed."""
    market = SyntheticMarket(KRAKEN_SYMBOLS, depth=30, seed=2026, step_us=20_000)
    return KrakenV2SyntheticVenue(market, messages=3000, trade_every=5, start_after_s=3.0)


@dataclass
class FlowRun:
    name: str
    process: subprocess.Popen
    log_path: Path
    started: float
    ended: float | None = None

    @property
    def state(self) -> str:
        code = self.process.poll()
        if code is None:
            return "running"
        return "done" if code == 0 else f"FAILED (exit {code})"


def demo_environment(
    sim: ExchangeSimulator,
    warehouse: Path,
    coinbase: ExchangeSimulator | None = None,
    kraken: ExchangeSimulator | None = None,
) -> dict[str, str]:
    """Env overrides that point the dev config at the simulator(s) and the demo warehouse."""
    venues = {}
    if coinbase is not None:
        venues |= {
            "CRYPTOFLOW_EXCHANGES__COINBASE__WS_URL": coinbase.ws_url,
            "CRYPTOFLOW_EXCHANGES__COINBASE__REST_URL": coinbase.http_url,
            "CRYPTOFLOW_EXCHANGES__COINBASE__SYMBOLS": COINBASE_PRODUCTS,
        }
    if kraken is not None:
        venues |= {
            "CRYPTOFLOW_EXCHANGES__KRAKEN__WS_URL": f"{kraken.ws_url}/v2",
            "CRYPTOFLOW_EXCHANGES__KRAKEN__REST_URL": kraken.http_url,
            "CRYPTOFLOW_EXCHANGES__KRAKEN__SYMBOLS": "["
            + ", ".join(s.replace("-", "/") for s in KRAKEN_SYMBOLS)
            + "]",
        }
    return venues | {
        "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__WS_URL": sim.ws_url,
        "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__REST_URL": sim.http_url,
        "CRYPTOFLOW_CONNECTOR__STOP_AT_REPLAY_END": "true",
        "CRYPTOFLOW_CATALOG__TYPE": "sql",
        "CRYPTOFLOW_CATALOG__URI": f"sqlite:///{warehouse / 'catalog.db'}",
        "CRYPTOFLOW_CATALOG__WAREHOUSE": str(warehouse),
    }


def start_flow(name: str, env: dict[str, str], log_dir: Path, workers: int) -> FlowRun:
    log_path = log_dir / f"{name}.log"
    log_file = log_path.open("w")
    cmd = [sys.executable, "-m", "bytewax.run", f"dataflows.{name}", "-w", str(workers)]
    process = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=log_file, stderr=subprocess.STDOUT
    )
    return FlowRun(name, process, log_path, time.monotonic())


def reset_tables(catalog_cfg: CatalogConfig, warehouse: Path, tables: tuple[str, ...]) -> None:
    """Drop the demo's tables and their files so each demo run shows exactly one replay."""
    catalog = load_catalog(catalog_cfg)
    for table in tables:
        identifier = (catalog_cfg.namespace, table)
        if catalog.table_exists(identifier):
            catalog.drop_table(identifier)
        shutil.rmtree(warehouse / catalog_cfg.namespace / table, ignore_errors=True)


def _progress_line(
    sim: ExchangeSimulator, runs: list[FlowRun], others: tuple[ExchangeSimulator, ...] = ()
) -> str:
    s = sim.stats
    flows = "  ".join(f"{r.name}: {r.state}" for r in runs)
    connections = sum(s.connections_by_ip.values())
    more = "".join(f", {o.venue.name} {o.stats.frames_sent}" for o in others)
    return f"replay: {s.frames_sent}/{s.frames_planned} frames sent on {connections} connections{more}  |  {flows}"


def _show_progress(out: TextIO, line: str, final: bool = False) -> None:
    if out.isatty():
        out.write("\r\033[K" + line + ("\n" if final else ""))
    else:
        out.write(line + "\n")
    out.flush()


def run_demo(
    warehouse: Path, speed: float = 0.0, workers: int = 1, keep: bool = False, out: TextIO = sys.stdout
) -> int:
    warehouse = warehouse.resolve()
    warehouse.mkdir(parents=True, exist_ok=True)
    log_dir = warehouse / "demo-logs"
    log_dir.mkdir(exist_ok=True)
    venue = BinanceSpotVenue.from_cryptofeed_v1()
    out.write(
        f"CryptoFlow demo: replaying {len(venue.frames)} recorded Binance spot frames "
        f"({len(venue.snapshots)} REST snapshots) at {'full speed' if speed == 0 else f'{speed}x'}\n"
    )
    coinbase_venue = CoinbaseVenue.from_recording(speed=speed)
    out.write(
        f"  + {len(coinbase_venue.frames)} recorded Coinbase Advanced Trade frames, and Kraken v2 from the "
        f"synthetic market ({len(KRAKEN_SYMBOLS)} symbols)\n"
    )
    with (
        ExchangeSimulator(venue, speed=speed) as sim,
        ExchangeSimulator(coinbase_venue) as cb,
        ExchangeSimulator(kraken_demo_venue()) as kr,
    ):
        others = (cb, kr)
        env = demo_environment(sim, warehouse, cb, kr)
        settings = load_settings(environ={**os.environ, **env})
        if not keep:
            reset_tables(settings.catalog, warehouse, (*FLOWS, "gaps"))
        # Create namespace and tables before three flows race to create them (the SQLite catalog raises
        # IntegrityError rather than ...AlreadyExistsError to the loser).
        catalog = load_catalog(settings.catalog)
        for table in (*FLOWS, "gaps"):
            ensure_table(catalog, settings.catalog.namespace, TABLES[table], settings.parquet)
        runs = [start_flow(name, env, log_dir, workers) for name in FLOWS]
        last_print = 0.0
        while any(r.process.poll() is None for r in runs):
            if time.monotonic() - last_print >= (0.2 if out.isatty() else 2.0):
                _show_progress(out, _progress_line(sim, runs, others))
                last_print = time.monotonic()
            time.sleep(0.05)
        _show_progress(out, _progress_line(sim, runs, others), final=True)
    failed = [r for r in runs if r.process.returncode != 0]
    for run in failed:
        tail = run.log_path.read_text().splitlines()[-20:]
        out.write(f"\n{run.name} failed; last lines of {run.log_path}:\n" + "\n".join(tail) + "\n")
    if failed:
        return 1
    print_summary(settings.catalog, out)
    out.write(f"\nWarehouse: {warehouse}   Flow logs: {log_dir}\n")
    return 0


def print_summary(catalog_cfg: CatalogConfig, out: TextIO) -> None:
    catalog = load_catalog(catalog_cfg)
    out.write("\nRows landed (read back through pyiceberg):\n")
    samples = {}
    for table in FLOWS:
        arrow = catalog.load_table((catalog_cfg.namespace, table)).scan().to_arrow()
        out.write(f"  {catalog_cfg.namespace}.{table:<12} {arrow.num_rows:>7} rows\n")
        by_symbol: dict[tuple[str, str], int] = {}
        for key in zip(arrow.column("exchange").to_pylist(), arrow.column("symbol").to_pylist(), strict=True):
            by_symbol[key] = by_symbol.get(key, 0) + 1
        for exchange in sorted({e for e, _ in by_symbol}):
            mine = {s: n for (e, s), n in by_symbol.items() if e == exchange}
            out.write(f"    {exchange:<12} {sum(mine.values()):>7}\n")
            for symbol, count in sorted(mine.items()):
                out.write(f"      {symbol:<10} {count:>7}\n")
        samples[table] = arrow.sort_by([("exchange_ts", "descending")]).slice(0, 3)
    for table, rows in samples.items():
        out.write(f"\nLatest rows of {table}:\n")
        for row in rows.to_pylist():
            if table == "spot_ob":
                out.write(
                    f"  {row['exchange_ts']:%Y-%m-%d %H:%M:%S.%f} {row['exchange']:<8} {row['symbol']:<9} "
                    f"bid {row['best_bid'].normalize():f} ask {row['best_ask'].normalize():f}  "
                    f"{len(row['bids'])}x{len(row['asks'])} levels verified={row['verified']}\n"
                )
            elif table == "spot_delta":
                out.write(
                    f"  {row['exchange_ts']:%Y-%m-%d %H:%M:%S.%f} {row['symbol']:<9} {row['side']:<4} "
                    f"{row['price'].normalize():f} x {row['qty'].normalize():f}  seq={row['seq']} snapshot={row['is_snapshot']}\n"
                )
            else:
                out.write(
                    f"  {row['exchange_ts']:%Y-%m-%d %H:%M:%S.%f} {row['symbol']:<9} {row['side']:<4} "
                    f"{row['price'].normalize():f} x {row['qty'].normalize():f}  trade_id={row['trade_id']}\n"
                )
