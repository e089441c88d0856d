"""Which sequencing scheme a book follows, from the event's exchange and market (pure)."""

from __future__ import annotations

from cryptoflow.model import Market
from operators.book.tracker import BINANCE_SPOT, BINANCE_USDM, BYBIT, COINBASE, KRAKEN, OKX
from operators.sequencing.binance import spot_verdict, usdm_verdict
from operators.sequencing.verdict import VerdictFn

_BY_EXCHANGE = {"bybit": BYBIT, "okx": OKX, "coinbase": COINBASE, "kraken": KRAKEN}


def scheme_of(exchange: str, market: str) -> str:
    """Binance spot and USD-M books differ (`U`/`u` vs the `pu` chain); other venues have one scheme."""
    if exchange == "binance":
        return BINANCE_SPOT if market == Market.SPOT else BINANCE_USDM
    try:
        return _BY_EXCHANGE[exchange]
    except KeyError:
        raise ValueError(f"no sequencing scheme for exchange {exchange!r}") from None


def diff_verdict(scheme: str) -> VerdictFn | None:
    """The REST-snapshot + diff rule for schemes that have one (Binance), else None (WS snapshots)."""
    return {BINANCE_SPOT: spot_verdict, BINANCE_USDM: usdm_verdict}.get(scheme)
