"""Wiring shared by the seven flows: one pipeline per configured source that offers the stream
(`connectors.registry`), each keyed by instrument, through the stream's stateful logic, into its table
(and `gaps` for book streams)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulLogic

from connectors.iceberg.sink import IcebergSink
from connectors.registry import offered, sources_for
from cryptoflow.config import Settings
from cryptoflow.model import GapRow
from cryptoflow.schemas import TABLES

LogicBuilder = Callable[[Any], StatefulLogic]


def build_stream_flow(
    stream: str, settings: Settings, logic: LogicBuilder, *, with_gaps: bool = False
) -> Dataflow:
    """`stream`'s table from every configured source; with `with_gaps`, `GapRow`s go to `gaps`."""
    sources = sources_for(settings, stream)
    if not sources:
        raise SystemExit(
            f"cryptoflow: no configured exchange offers stream {stream!r} "
            f"(sources that can: {', '.join(offered(stream)) or 'none'}); enable one in the config"
        )
    flow = Dataflow(stream)
    cat, parquet = settings.catalog, settings.parquet
    for name, source in sources:
        events = op.input(f"{name}_in", flow, source)
        keyed = op.key_on(f"{name}_key", events, lambda e: e.key)
        rows = op.stateful(f"{name}_logic", keyed, logic)
        if with_gaps:
            split = op.branch(f"{name}_split", rows, lambda key_row: not isinstance(key_row[1], GapRow))
            rows = split.trues
            gaps = IcebergSink(TABLES["gaps"], cat, parquet, f"{stream}-gaps")
            op.output(f"{name}_iceberg_gaps", split.falses, gaps)
        op.output(f"{name}_iceberg", rows, IcebergSink(TABLES[stream], cat, parquet, stream))
    return flow
