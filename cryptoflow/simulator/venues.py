"""The simulator's venues by name, so one process can serve several (one port each).

`cryptoflow simulate --venues binance,binance-usdm,bybit,okx` starts them on consecutive ports from `--port`;
`--synthetic` (or the names `bybit-synthetic`, `okx-synthetic`) serves Bybit and OKX from the synthetic
market: liquidations, funding and OKX books with `seqId` + checksum, which no recording has.
`--capture DIR` serves a `cryptoflow capture` directory instead: each venue in it on its own port.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cryptoflow.simulator.server import ExchangeSimulator, Venue


def _binance() -> Venue:
    from cryptoflow.simulator.binance_spot import BinanceSpotVenue

    return BinanceSpotVenue.from_cryptofeed_v1()


def _binance_usdm() -> Venue:
    from cryptoflow.simulator.binance_usdm import BinanceUsdmVenue, with_generated_derivatives

    return with_generated_derivatives(BinanceUsdmVenue.from_cryptofeed_v1())


def _bybit() -> Venue:
    from cryptoflow.simulator.bybit import BybitVenue

    return BybitVenue.from_v3()


def _bybit_v1() -> Venue:
    from cryptoflow.simulator.bybit import BybitVenue

    return BybitVenue.from_v1()


def _okx() -> Venue:
    from cryptoflow.simulator.okx import OkxVenue

    return OkxVenue.from_cryptofeed_v1(stamp_seq_ids=True)


def _coinbase(speed: float = 1.0, **_: object) -> Venue:
    from cryptoflow.simulator.coinbase import CoinbaseVenue

    return CoinbaseVenue.from_recording(speed=speed)


def _kraken(
    speed: float = 1.0, symbols: int = 10, depth: int = 50, seed: int = 0, messages: int = 100_000,
    rate: float = 1000.0, wall_clock: bool = False, **_: object,
) -> Venue:  # fmt: skip
    """Kraken v2 from the synthetic market (no contiguous v2 recording exists) + the v1 replays."""
    from cryptoflow.simulator.kraken import KrakenV2SyntheticVenue
    from cryptoflow.simulator.kraken_v1 import KrakenV1ReplayVenue
    from cryptoflow.simulator.synthetic.market import SyntheticMarket

    market = SyntheticMarket(
        [f"S{i:04d}-USD" for i in range(symbols)],
        depth=depth,
        seed=seed,
        keep_truth=False,
        wall_clock=wall_clock,
    )
    v1 = KrakenV1ReplayVenue.from_recordings(speed=speed)
    return KrakenV2SyntheticVenue(market, messages=messages, rate=rate, v1=v1)


def synthetic_symbols(venue: str, count: int) -> list[str]:
    """The synthetic venues' symbols: Bybit `S0000-USDT`... (sent as `S0000USDT`, spot and linear alike);
    OKX instrument ids in turn spot `S0000-USDT`, perp `S0001-USDT-SWAP`, future `S0002-USD-261225`."""
    if venue == "okx":
        return [f"S{i:04d}-" + ("USDT", "USDT-SWAP", "USD-261225")[i % 3] for i in range(count)]
    return [f"S{i:04d}-USDT" for i in range(count)]


def _bybit_synthetic(
    symbols: int = 10, depth: int = 50, seed: int = 0, messages: int = 100_000, rate: float = 1000.0,
    **_: object,
) -> Venue:  # fmt: skip
    """Bybit v5 spot + linear from two synthetic markets: books, trades, linear liquidations and funding."""
    from cryptoflow.simulator.synthetic.market import SyntheticMarket
    from cryptoflow.simulator.synthetic_venues import BybitSyntheticVenue

    names = synthetic_symbols("bybit", symbols)
    markets = {
        "spot": SyntheticMarket(names, depth=depth, seed=seed, keep_truth=False),
        "linear": SyntheticMarket(names, depth=depth, seed=seed + 1, keep_truth=False),
    }
    return BybitSyntheticVenue(markets, messages=messages, rate=rate)


def _okx_synthetic(
    symbols: int = 10, depth: int = 50, seed: int = 0, messages: int = 100_000, rate: float = 1000.0,
    **_: object,
) -> Venue:  # fmt: skip
    """OKX v5 from a synthetic market of spot, SWAP and FUTURES instruments: books with seqId + checksum,
    trades, funding-rate, liquidation-orders."""
    from cryptoflow.simulator.synthetic.market import SyntheticMarket
    from cryptoflow.simulator.synthetic_venues import OkxSyntheticVenue

    market = SyntheticMarket(synthetic_symbols("okx", symbols), depth=depth, seed=seed, keep_truth=False)
    return OkxSyntheticVenue(market, messages=messages, rate=rate)


# venues taking options (speed, synthetic sizes) get them as keywords
OPTIONED = {
    "coinbase": _coinbase,
    "kraken": _kraken,
    "bybit-synthetic": _bybit_synthetic,  # Bybit v5 from the synthetic market
    "okx-synthetic": _okx_synthetic,  # OKX v5 from the synthetic market
}
SYNTHETIC = {"bybit": "bybit-synthetic", "okx": "okx-synthetic"}  # `--synthetic`: recording -> market

VENUES: dict[str, Callable[[], Venue]] = {
    "binance": _binance,  # Binance spot, cryptofeed v1 capture
    "binance-usdm": _binance_usdm,  # Binance USD-M capture + generated markPrice/forceOrder frames
    "bybit": _bybit,  # Bybit v5 spot + linear, cryptofeed v3 capture
    "bybit-v1": _bybit_v1,  # Bybit v5 orderbook.1 captures
    "okx": _okx,  # OKX v5 2022 capture, with seqId/prevSeqId stamped as OKX sends them today
}


def start_venues(
    names: list[str],
    host: str,
    first_port: int,
    speed: float,
    clock: str = "per_connection",
    synthetic: dict | None = None,
) -> dict[str, ExchangeSimulator]:
    """Start one simulator per venue on `first_port`, `first_port + 1`, ... (0 = any free port).
    `synthetic` holds the synthetic market's sizes (symbols, depth, seed, messages, rate) and, with
    `synthetic: True`, serves Bybit and OKX from the synthetic market instead of their recordings."""
    if (synthetic or {}).get("synthetic"):
        names = [SYNTHETIC.get(n, n) for n in names]
    unknown = [n for n in names if n not in VENUES and n not in OPTIONED]
    if unknown:
        raise ValueError(f"unknown simulator venue(s) {unknown}; known: {sorted([*VENUES, *OPTIONED])}")
    sims = {}
    for i, name in enumerate(names):
        port = first_port + i if first_port else 0
        if name in OPTIONED:
            options = {
                k: v
                for k, v in (synthetic or {}).items()
                if k in ("symbols", "depth", "seed", "messages", "rate", "wall_clock")
            }
            venue = OPTIONED[name](speed=speed, **options)
        else:
            venue = VENUES[name]()
        sims[name] = ExchangeSimulator(venue, host=host, port=port, speed=speed, clock=clock).start()
    return sims


# ---------------------------------------------------------------- `cryptoflow capture` directories
def _capture_venue(source: str, path: Path, speed: float) -> tuple[str, Venue]:
    """The simulator venue (by its `--venues` name) serving one venue's part of a capture."""
    if source == "binance_spot":
        from cryptoflow.simulator.binance_spot import BinanceSpotVenue

        return "binance", BinanceSpotVenue.from_recording(path)
    if source == "binance_usdm":
        from cryptoflow.simulator.binance_usdm import BinanceUsdmVenue

        return "binance-usdm", BinanceUsdmVenue.from_recording(path)
    if source == "bybit":
        from cryptoflow.simulator.bybit import BybitVenue

        return "bybit", BybitVenue.from_recordings([path])
    if source == "okx":
        from cryptoflow.simulator.okx import OkxVenue

        return "okx", OkxVenue.from_recordings([path])  # seqIds as captured
    if source == "coinbase_spot":
        from cryptoflow.simulator.coinbase import CoinbaseVenue

        return "coinbase", CoinbaseVenue.from_recording(path, speed=speed)
    from cryptoflow.simulator.kraken_replay import KrakenV2ReplayVenue

    return "kraken", KrakenV2ReplayVenue.from_recordings([path])


def capture_venues(capture: Path, speed: float = 0.0) -> dict[str, Venue]:
    """`--venues` name -> venue, for every venue in a `cryptoflow capture` directory
    (`<capture>/<source>/<shard>/*.seg`), in the order of `cryptoflow.capture.VENUES`."""
    from connectors.recordings.journal_capture import SOURCES, sources_of

    found = sources_of(capture)
    if not found:
        raise ValueError(f"{capture}: no `cryptoflow capture` journals (<source>/<shard>/*.seg) found")
    out = {}
    for source in sorted(found, key=SOURCES.index):
        path = Path(os.path.commonpath(found[source]))
        name, venue = _capture_venue(source, path, speed)
        out[name] = venue
    return out


def start_capture_venues(
    capture: Path, host: str, first_port: int, speed: float, clock: str = "per_connection",
    names: list[str] | None = None,
) -> dict[str, ExchangeSimulator]:  # fmt: skip
    """One simulator per venue in the capture (only `names` if given), on consecutive ports."""
    venues = capture_venues(capture, speed)
    missing = sorted(set(names or []) - set(venues))
    if missing:
        raise ValueError(f"{capture} holds no capture of {missing}; it has {sorted(venues)}")
    chosen = [n for n in venues if not names or n in names]
    return {
        name: ExchangeSimulator(
            venues[name], host=host, port=first_port + i if first_port else 0, speed=speed, clock=clock
        ).start()
        for i, name in enumerate(chosen)
    }
