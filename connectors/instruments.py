"""Instrument maps from a venue's instrument-info REST endpoint.

Why: symbols are normalized (`BASE-QUOTE`) and typed (`spot | perp | future`) from what the exchange
says about them, never from string guessing. Clients fetch the map before the first subscribe, keep it
(reconnects reuse it) and refresh it every `instruments_refresh_s` so listing changes are picked up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Instrument:
    exchange_symbol: str
    symbol: str  # normalized BASE-QUOTE
    market: str  # spot | perp | future
