"""Build the configured Iceberg sink for a stream (catalog, Parquet, commit retries, optional ledger)."""

from __future__ import annotations

from connectors.iceberg.sink import IcebergSink
from cryptoflow.config import Settings
from cryptoflow.schemas import TableDef


def iceberg_sink(settings: Settings, table: TableDef, flow_id: str) -> IcebergSink:
    ledger_factory = None
    if settings.ledger.enabled:
        from connectors.iceberg.ledger import DynamoLedger

        cfg = settings.ledger

        def ledger_factory() -> DynamoLedger:
            return DynamoLedger.from_config(cfg)

    sink = IcebergSink(table, settings.catalog, settings.parquet, flow_id, settings.sink, ledger_factory)
    sink.prepare()  # catalog and table ready before the first rows, not built while they wait
    return sink
