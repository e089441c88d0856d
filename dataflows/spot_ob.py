"""Spot order-book snapshots from every configured spot venue (`connectors.registry`: Binance spot diffs
+ REST snapshots + bookTicker, Coinbase level2, Kraken v2 book with checksums) -> verified books ->
`spot_ob` rows every 100 ms of event time (full checkpoints every 1 s), and a `gaps` row for every break.
Each venue gets its own book logic (its sequencing scheme); rows of all venues share the sinks.

Run: python -m bytewax.run dataflows.spot_ob [-w 1] [-r recovery/ -s 30 -b 60]
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from connectors.iceberg.sink import IcebergSink
from connectors.registry import sources
from cryptoflow.config import Settings
from cryptoflow.model import BookRow
from cryptoflow.runtime import process_settings
from cryptoflow.schemas import TABLES
from operators.book_logic import BookLogic, book_settings

STREAM = "spot_ob"


def build_flow(settings: Settings) -> Dataflow:
    flow = Dataflow(STREAM)
    book = book_settings(settings.book, STREAM)
    outs = []
    for entry, source in sources(settings, STREAM):
        events = op.input(entry.exchange, flow, source)
        keyed = op.key_on(f"{entry.exchange}_key", events, lambda e: e.key)
        scheme = entry.scheme
        outs.append(op.stateful(f"{entry.exchange}_book", keyed,
                                lambda resume, scheme=scheme: BookLogic(scheme, book, resume)))  # fmt: skip
    if not outs:
        raise SystemExit(f"cryptoflow: no exchange with symbols is configured for stream {STREAM}")
    out = outs[0] if len(outs) == 1 else op.merge("all_exchanges", *outs)
    split = op.branch("split", out, lambda key_row: isinstance(key_row[1], BookRow))
    cat, parquet = settings.catalog, settings.parquet
    op.output("iceberg_ob", split.trues, IcebergSink(TABLES[STREAM], cat, parquet, STREAM))
    op.output("iceberg_gaps", split.falses, IcebergSink(TABLES["gaps"], cat, parquet, f"{STREAM}-gaps"))
    return flow


flow = build_flow(process_settings())
