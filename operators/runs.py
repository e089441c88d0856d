"""Group a source batch into one run of events per key, so Bytewax moves one item per key and batch.

Bytewax costs about a microsecond per item per step (key_on, the stateful hop, branch, the sink hand-off);
a depth frame costs a few microseconds of our own work, so per-frame items would dominate. A run keeps
its events in arrival (= offset) order; runs of different keys are independent, and every event of one
source batch belongs to the same epoch, so regrouping never changes what one epoch commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptoflow.level_block import DepthRead
from cryptoflow.model import instrument_key


@dataclass(slots=True)
class EventRun:
    """Consecutive events (offset order) of one key from one source batch."""

    key: str
    events: list[Any]


def group_runs(batch: Iterable[Any]) -> list[EventRun]:
    """One `EventRun` per key, in order of each key's first event; events keep their order. A
    `DepthRead` contributes its per-symbol `DepthGroup`s, each in its key's run as one element."""
    runs: dict[tuple[str, str, str], list[Any]] = {}
    for event in batch:
        if event.__class__ is DepthRead:  # a socket read as per-symbol column groups: one item per group
            for group in event.groups:
                ident = (group.exchange, group.market, group.symbol)
                events = runs.get(ident)
                if events is None:
                    runs[ident] = [group]
                else:
                    events.append(group)
            continue
        ident = (event.exchange, event.market, event.symbol)
        events = runs.get(ident)
        if events is None:
            runs[ident] = [event]
        else:
            events.append(event)
    return [EventRun(instrument_key(*ident), events) for ident, events in runs.items()]


def keyed_runs(batch: Iterable[Any]) -> list[tuple[str, EventRun]]:
    """`group_runs` as the `(key, run)` pairs Bytewax's stateful step takes: one step instead of a
    `key_on` after it (about a microsecond per run, and most runs hold one event)."""
    return [(run.key, run) for run in group_runs(batch)]
