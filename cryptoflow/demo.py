"""`cryptoflow demo`: the main job on embedded defaults.

Starts the local exchange simulator (one port per venue: the real Binance spot and USD-M recordings, the
USD-M one with generated markPrice/forceOrder frames since no recording has them; Bybit, OKX and Coinbase
recordings; Kraken v2 and the Bybit/OKX liquidations and funding the recordings lack from the synthetic
market), runs all seven dataflows against it (real `bytewax.run` processes, forked from one server that
imported the libraries once; real sockets), shows progress, and prints what landed in the local Iceberg
warehouse per table and exchange.

Venues are listed in `DEMO_VENUES`: a venue added there (a simulator venue + the env overrides that
point its config section at it) is picked up by every flow that offers its streams.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from connectors.iceberg.catalog import load_catalog
from connectors.registry import offered
from cryptoflow.config import CatalogConfig, load_settings
from cryptoflow.flow_procs import FlowProcess, start_bytewax
from cryptoflow.simulator.binance_spot import BinanceSpotVenue
from cryptoflow.simulator.binance_usdm import BinanceUsdmVenue, with_generated_derivatives
from cryptoflow.simulator.coinbase import CoinbaseVenue
from cryptoflow.simulator.kraken import KrakenV2SyntheticVenue
from cryptoflow.simulator.server import ExchangeSimulator, Venue
from cryptoflow.simulator.synthetic.market import SyntheticMarket

FLOWS = ("spot_delta", "spot_ob", "ticks", "futures_delta", "futures_ob", "liquidations", "funding")
SUMMARY_TABLES = (*FLOWS, "gaps")


def _binance_usdm_env(sim: ExchangeSimulator) -> dict[str, str]:
    venue = sim.venue
    return {
        "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__ENABLED": "true",
        "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__SYMBOLS": "[" + ", ".join(sorted(venue.snapshots)) + "]",  # type: ignore[attr-defined]
        "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__WS_URL": sim.ws_url,
        "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__REST_URL": sim.http_url,
    }


def _binance_spot_env(sim: ExchangeSimulator) -> dict[str, str]:
    return {
        "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__WS_URL": sim.ws_url,
        "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__REST_URL": sim.http_url,
    }


COINBASE_PRODUCTS = ["BTC-USD", "ETH-USD"]  # the products of the Coinbase recording
KRAKEN_SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD", "ALGO-USD"]  # synthetic market


def _coinbase_env(sim: ExchangeSimulator) -> dict[str, str]:
    return {
        "CRYPTOFLOW_EXCHANGES__COINBASE__ENABLED": "true",
        "CRYPTOFLOW_EXCHANGES__COINBASE__WS_URL": sim.ws_url,
        "CRYPTOFLOW_EXCHANGES__COINBASE__REST_URL": sim.http_url,
        "CRYPTOFLOW_EXCHANGES__COINBASE__SYMBOLS": "[" + ", ".join(COINBASE_PRODUCTS) + "]",
    }


def kraken_demo_venue() -> KrakenV2SyntheticVenue:
    """Kraken v2 from the synthetic market (no v2 recording exists): 3,000 book changes 20 ms of exchange
    time apart and a trade every 5, starting once every flow reading Kraken subscribed each pair (at the
    latest 5 s after the first flow connects), so every flow sees the whole market."""
    market = SyntheticMarket(KRAKEN_SYMBOLS, depth=30, seed=2026, step_us=20_000)
    flows = sum(1 for stream in FLOWS if "kraken_spot" in offered(stream))  # one channel each
    return KrakenV2SyntheticVenue(market, messages=3000, trade_every=5, start_after_s=5.0,
                                  start_at_subscriptions=flows * len(KRAKEN_SYMBOLS))  # fmt: skip


def _kraken_env(sim: ExchangeSimulator) -> dict[str, str]:
    return {
        "CRYPTOFLOW_EXCHANGES__KRAKEN__ENABLED": "true",
        "CRYPTOFLOW_EXCHANGES__KRAKEN__WS_URL": f"{sim.ws_url}/v2",
        "CRYPTOFLOW_EXCHANGES__KRAKEN__REST_URL": sim.http_url,
        "CRYPTOFLOW_EXCHANGES__KRAKEN__SYMBOLS": "["
        + ", ".join(s.replace("-", "/") for s in KRAKEN_SYMBOLS)
        + "]",
    }


def _bybit_venue() -> Venue:
    from cryptoflow.simulator.bybit import BybitVenue

    return BybitVenue.from_v3()


def _okx_venue() -> Venue:
    from cryptoflow.simulator.okx import OkxVenue

    return OkxVenue.from_cryptofeed_v1(stamp_seq_ids=True)  # ids as OKX sends them today


BYBIT_LINEAR = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "DOGE-USDT"]  # the dev config's linear symbols
OKX_INSTRUMENTS = ["BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527"]  # the dev config's OKX instruments


def bybit_synthetic_demo_venue() -> Venue:
    """Bybit linear from the synthetic market, for what the recording lacks (no allLiquidation frame):
    600 book changes 20 ms apart, a liquidation every 10, starting 3 s after the first connection."""
    from cryptoflow.simulator.synthetic_venues import BybitSyntheticVenue

    market = SyntheticMarket(BYBIT_LINEAR, depth=30, seed=2027, step_us=20_000)
    return BybitSyntheticVenue({"linear": market}, messages=600, trade_every=0, liquidation_every=10,
                               funding_every=0, start_after_s=3.0)  # fmt: skip


def okx_synthetic_demo_venue() -> Venue:
    """OKX from the synthetic market over the dev config's instruments, for what the 2022 recording lacks
    (funding-rate, liquidation-orders): a liquidation every 10 and a funding update every 20 changes."""
    from cryptoflow.simulator.synthetic_venues import OkxSyntheticVenue

    market = SyntheticMarket(OKX_INSTRUMENTS, depth=30, seed=2028, step_us=20_000)
    return OkxSyntheticVenue(market, messages=600, trade_every=0, liquidation_every=10, funding_every=20,
                             start_after_s=3.0)  # fmt: skip


def _venue_env(section: str) -> Callable[[ExchangeSimulator], dict[str, str]]:
    """Enable a venue whose dev-config symbols already match its recording, pointed at the simulator."""

    def env(sim: ExchangeSimulator) -> dict[str, str]:
        prefix = f"CRYPTOFLOW_EXCHANGES__{section}__"
        return {prefix + "ENABLED": "true", prefix + "WS_URL": sim.ws_url, prefix + "REST_URL": sim.http_url}

    return env


EnvFor = Callable[[ExchangeSimulator], dict[str, str]]
# (label, simulator venue factory, env overrides pointing the venue's config at its simulator[, flows]):
# with a 4th element the overrides apply to those flows only (a synthetic venue standing in for the
# streams a recording lacks), on top of the venues listed before it.
DEMO_VENUES: list[
    tuple[str, Callable[[], Venue], EnvFor] | tuple[str, Callable[[], Venue], EnvFor, tuple[str, ...]]
] = [
    ("binance spot", BinanceSpotVenue.from_cryptofeed_v1, _binance_spot_env),
    (
        "binance usdm",
        lambda: with_generated_derivatives(BinanceUsdmVenue.from_cryptofeed_v1()),
        _binance_usdm_env,
    ),
    ("bybit", _bybit_venue, _venue_env("BYBIT")),
    ("okx", _okx_venue, _venue_env("OKX")),
    ("coinbase", CoinbaseVenue.from_recording, _coinbase_env),
    ("kraken v2 (synthetic)", kraken_demo_venue, _kraken_env),
    ("bybit liquidations (synthetic)", bybit_synthetic_demo_venue, _venue_env("BYBIT"), ("liquidations",)),
    (
        "okx liquidations+funding (synthetic)",
        okx_synthetic_demo_venue,
        _venue_env("OKX"),
        ("liquidations", "funding"),
    ),
]


@dataclass
class FlowRun:
    name: str
    process: FlowProcess
    log_path: Path
    started: float
    ended: float | None = None

    @property
    def state(self) -> str:
        code = self.process.poll()
        if code is None:
            return "running"
        return "done" if code == 0 else f"FAILED (exit {code})"


def demo_environment(sim: ExchangeSimulator, warehouse: Path) -> dict[str, str]:
    """Env overrides that point the dev config's Binance spot at the simulator and the demo warehouse;
    every other venue of the dev config is switched off (the demo switches on the ones it simulates)."""
    return {
        **_binance_spot_env(sim),
        "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__ENABLED": "false",
        "CRYPTOFLOW_EXCHANGES__BYBIT__ENABLED": "false",
        "CRYPTOFLOW_EXCHANGES__OKX__ENABLED": "false",
        "CRYPTOFLOW_EXCHANGES__COINBASE__ENABLED": "false",
        "CRYPTOFLOW_EXCHANGES__KRAKEN__ENABLED": "false",
        "CRYPTOFLOW_CONNECTOR__STOP_AT_REPLAY_END": "true",
        "CRYPTOFLOW_CATALOG__TYPE": "sql",
        "CRYPTOFLOW_CATALOG__URI": f"sqlite:///{warehouse / 'catalog.db'}",
        "CRYPTOFLOW_CATALOG__WAREHOUSE": str(warehouse),
    }


def start_flow(name: str, env: dict[str, str], log_dir: Path, workers: int) -> FlowRun:
    """`python -m bytewax.run dataflows.<name> -w <workers>` as its own process, forked from a server
    that imported the libraries once (`cryptoflow.flow_procs`: start-up was most of the demo's time)."""
    log_path = log_dir / f"{name}.log"
    process = start_bytewax(f"dataflows.{name}", ["-w", str(workers)], env, log_path)
    return FlowRun(name, process, log_path, time.monotonic())


def reset_tables(catalog_cfg: CatalogConfig, warehouse: Path, tables: tuple[str, ...]) -> None:
    """Drop the demo's tables and their files so each demo run shows exactly one replay."""
    catalog = load_catalog(catalog_cfg)
    for table in tables:
        identifier = (catalog_cfg.namespace, table)
        if catalog.table_exists(identifier):
            catalog.drop_table(identifier)
        shutil.rmtree(warehouse / catalog_cfg.namespace / table, ignore_errors=True)


def _progress_line(sims: dict[str, ExchangeSimulator], runs: list[FlowRun]) -> str:
    replays = "  ".join(
        f"{label}: {sim.stats.frames_sent}/{sim.stats.frames_planned} frames on "
        f"{sum(sim.stats.connections_by_ip.values())} connections"
        for label, sim in sims.items()
    )
    done = sum(1 for r in runs if r.state == "done")
    failed = [r.name for r in runs if r.state.startswith("FAILED")]
    flows = f"flows done {done}/{len(runs)}" + (f", FAILED: {', '.join(failed)}" if failed else "")
    return f"replay: {replays}  |  {flows}"


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
    venues = [
        (entry[0], entry[1](), entry[2], entry[3] if len(entry) > 3 else FLOWS) for entry in DEMO_VENUES
    ]
    speed_text = "full speed" if speed == 0 else f"{speed}x"
    for label, venue, _, flows in venues:
        frames, snapshots = len(getattr(venue, "frames", [])), len(getattr(venue, "snapshots", {}))
        if frames:
            what = f"replaying {frames} recorded frames ({snapshots} REST snapshots)"
        else:  # venues that drive their own sessions (subscribe by message, or a synthetic market)
            what = (
                "serving its recording per subscription"
                if "synthetic" not in label
                else "generating a market"
            )
        only = "" if flows == FLOWS else f" for {', '.join(flows)}"
        out.write(f"CryptoFlow demo: {label}: {what}{only} at {speed_text}\n")
    with ExitStack() as stack:
        sims = {
            label: stack.enter_context(ExchangeSimulator(venue, speed=speed)) for label, venue, _, _ in venues
        }
        env = demo_environment(sims[venues[0][0]], warehouse)
        flow_env = {name: {} for name in FLOWS}
        for label, _, env_for, flows in venues:
            for name in flows:
                flow_env[name].update(env_for(sims[label]))
        settings = load_settings(environ={**os.environ, **env})
        if not keep:
            reset_tables(settings.catalog, warehouse, SUMMARY_TABLES)
        runs = [start_flow(name, {**env, **flow_env[name]}, log_dir, workers) for name in FLOWS]
        last_print = 0.0
        while any(r.process.poll() is None for r in runs):
            if time.monotonic() - last_print >= (0.2 if out.isatty() else 2.0):
                _show_progress(out, _progress_line(sims, runs))
                last_print = time.monotonic()
            time.sleep(0.05)
        _show_progress(out, _progress_line(sims, runs), final=True)
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
    out.write("\nRows landed (read back through pyiceberg), per table and exchange:\n")
    samples = {}
    for table in SUMMARY_TABLES:
        identifier = (catalog_cfg.namespace, table)
        if not catalog.table_exists(identifier):  # sinks create their table with the first row
            out.write(f"  {catalog_cfg.namespace}.{table:<14} {0:>7} rows\n")
            continue
        arrow = catalog.load_table(identifier).scan().to_arrow()
        out.write(f"  {catalog_cfg.namespace}.{table:<14} {arrow.num_rows:>7} rows\n")
        by_venue: dict[tuple[str, str], dict[str, int]] = {}
        for exchange, market, symbol in zip(
            arrow.column("exchange").to_pylist(), arrow.column("market").to_pylist(),
            arrow.column("symbol").to_pylist(), strict=True,
        ):  # fmt: skip
            symbols = by_venue.setdefault((exchange, market), {})
            symbols[symbol] = symbols.get(symbol, 0) + 1
        for (exchange, market), symbols in sorted(by_venue.items()):
            detail = ", ".join(f"{s} {n}" for s, n in sorted(symbols.items()))
            out.write(f"      {exchange:<9} {market:<6} {sum(symbols.values()):>7}   ({detail})\n")
        if table in ("spot_delta", "ticks", "liquidations", "funding") and arrow.num_rows:
            samples[table] = arrow.sort_by([("exchange_ts", "descending")]).slice(0, 3)
    for table, rows in samples.items():
        out.write(f"\nLatest rows of {table}:\n")
        for row in rows.to_pylist():
            out.write(
                f"  {row['exchange_ts']:%Y-%m-%d %H:%M:%S.%f} {row['symbol']:<10} {_describe(table, row)}\n"
            )


def _describe(table: str, row: dict) -> str:
    def num(value) -> str:
        return "-" if value is None else f"{value.normalize():f}"

    if table == "spot_delta":
        return f"{row['side']:<4} {num(row['price'])} x {num(row['qty'])}  seq={row['seq']} snapshot={row['is_snapshot']}"
    if table == "ticks":
        return f"{row['side']:<4} {num(row['price'])} x {num(row['qty'])}  trade_id={row['trade_id']}"
    if table == "liquidations":
        return f"{row['side']:<5} position liquidated: {num(row['qty'])} @ {num(row['price'])}"
    return f"funding {num(row['funding_rate'])} mark {num(row['mark_price'])} index {num(row['index_price'])}"
