"""Wiring shared by the seven flows: one pipeline per configured source that offers the stream
(`connectors.registry`), each keyed by instrument, through the stream's stateful logic, into its table
(and `gaps` for book streams).

Throughput: each source batch is grouped into one run of events per key (`operators.runs`), so Bytewax
moves one item per key and batch, not one per frame, and `PositionedLogic` hands the sink one batch of
rows per run; the cyclic garbage collector runs less often (`cryptoflow.gc_policy`).

Exactly-once: the stateful logic is wrapped in `PositionedLogic`, so every row carries the (shard,
offset) of the input that triggered it, and the sinks (`iceberg_sink`) drop rows their table already
holds. Each source's sinks get their own writer id (the step id carries the source name), so one
table's watermarks never mix two sources' shard numbers. With `journal.enabled` the sources read
their shard's journal (connectors/journal), which makes a replay after a crash deterministic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulLogic

from connectors.iceberg.factory import iceberg_sink
from connectors.registry import offered, sources_for
from cryptoflow.config import Settings
from cryptoflow.gc_policy import tune_for_throughput
from cryptoflow.model import GapRow
from cryptoflow.schemas import TABLES
from operators.positioned import PositionedLogic
from operators.runs import keyed_runs

LogicBuilder = Callable[[Any], StatefulLogic]


def build_stream_flow(
    stream: str,
    settings: Settings,
    logic: LogicBuilder,
    *,
    with_gaps: bool = False,
    sources: list[tuple[str, Source]] | None = None,
) -> Dataflow:
    """`stream`'s table from every configured source; with `with_gaps`, `GapRow`s go to `gaps`.
    `sources` overrides `sources_for(settings, stream)` (benchmarks swap the socket, nothing else)."""
    if sources is None:
        sources = sources_for(settings, stream)
    if not sources:
        raise SystemExit(
            f"cryptoflow: no configured exchange offers stream {stream!r} "
            f"(sources that can: {', '.join(offered(stream)) or 'none'}); enable one in the config"
        )
    tune_for_throughput()
    flow = Dataflow(stream)
    for name, source in sources:
        events = op.input(f"{name}_in", flow, source)
        keyed = op.flat_map_batch(f"{name}_runs", events, keyed_runs)  # (key, run) pairs
        split = GapRow if with_gaps else None
        rows = op.stateful(f"{name}_logic", keyed, _positioned(logic, split))
        if with_gaps:
            branch = op.branch(f"{name}_split", rows, lambda key_batch: not key_batch[1].split)
            rows = branch.trues
            gaps = iceberg_sink(settings, TABLES["gaps"], f"{stream}-gaps")
            op.output(f"{name}_iceberg_gaps", branch.falses, gaps)
        op.output(f"{name}_iceberg", rows, iceberg_sink(settings, TABLES[stream], stream))
    return flow


def _positioned(logic: LogicBuilder, split: type | None) -> Callable[[Any], PositionedLogic]:
    def build(resume: Any) -> PositionedLogic:
        return PositionedLogic(logic(resume), split, rebuild=lambda: logic(None))

    return build
