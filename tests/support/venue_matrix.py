"""The subscribe venues (Bybit, OKX, Coinbase, Kraken) as test parameters: a simulator venue serving the
real recording (Kraken: the seeded synthetic market), the env that points only that venue's config at
the simulator, its `cryptoflow capture` name, and the flows whose rows a test compares."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from cryptoflow.demo import DEMO_VENUES
from cryptoflow.simulator.kraken import KrakenV2SyntheticVenue
from cryptoflow.simulator.server import ExchangeSimulator, Venue
from cryptoflow.simulator.synthetic.market import SyntheticMarket

OFF = {
    f"CRYPTOFLOW_EXCHANGES__{section}__ENABLED": "false"
    for section in ("BINANCE__SPOT", "BINANCE__USDM", "BYBIT", "OKX", "COINBASE", "KRAKEN")
}
# Columns that differ between two runs of the same data: when it arrived and where it sits in the stream.
VOLATILE = ("ingest_ts", "source_offset")


def _kraken_small() -> Venue:
    market = SyntheticMarket(["BTC-USD", "ETH-USD", "SOL-USD", "ALGO-USD"], depth=20, seed=7, step_us=20_000)
    return KrakenV2SyntheticVenue(market, messages=400, trade_every=4, start_after_s=0.5)


@dataclass(frozen=True)
class VenueCase:
    name: str  # `cryptoflow capture --venues` name
    source: str  # registry source name = journal sub-directory
    make_venue: Callable[[], Venue]
    env_for: Callable[[ExchangeSimulator], dict[str, str]]
    flows: tuple[str, ...]  # flows whose rows are compared
    shards: int  # total_shards that puts the venue's symbols into more than one shard

    def env(self, sim: ExchangeSimulator, **extra: str) -> dict[str, str]:
        return {
            **OFF,
            **self.env_for(sim),
            "CRYPTOFLOW_CONNECTOR__STOP_AT_REPLAY_END": "true",
            "CRYPTOFLOW_CONNECTOR__RECONNECT_INITIAL_S": "0.05",
            "CRYPTOFLOW_SHARDING__TOTAL_SHARDS": str(self.shards),
            **{f"CRYPTOFLOW_{k.upper()}": v for k, v in extra.items()},
        }

    def __str__(self) -> str:
        return self.name


def _demo(label: str) -> tuple[Callable[[], Venue], Callable[[ExchangeSimulator], dict[str, str]]]:
    for name, factory, env_for in DEMO_VENUES:
        if name.startswith(label):
            return factory, env_for
    raise KeyError(label)


CASES = [
    VenueCase("bybit", "bybit", *_demo("bybit"), ("ticks", "futures_delta"), 4),
    VenueCase("okx", "okx", *_demo("okx"), ("ticks", "spot_delta"), 4),
    VenueCase("coinbase", "coinbase_spot", *_demo("coinbase"), ("ticks", "spot_delta"), 8),
    VenueCase("kraken", "kraken_spot", _kraken_small, _demo("kraken")[1], ("ticks", "spot_delta"), 4),
]


def stable(rows: list[dict]) -> Counter:
    """Rows as a multiset without the columns that legitimately differ between two runs."""
    return Counter(tuple(sorted((k, v) for k, v in r.items() if k not in VOLATILE)) for r in rows)
