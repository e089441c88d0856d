"""Catalog access: SqlCatalog (SQLite + local files) embedded, RestCatalog with SigV4 for S3 Tables."""

from __future__ import annotations

import logging
from pathlib import Path

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.table import Table
from sqlalchemy.exc import OperationalError

from cryptoflow.config import CatalogConfig, ParquetConfig
from cryptoflow.schemas import SCHEMA_VERSION, TableDef

log = logging.getLogger(__name__)


def _sqlite_uri(uri: str) -> str:
    """Make a relative `sqlite:///path` absolute and create its directory."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path = Path(uri[len(prefix) :])
    path = path if path.is_absolute() else Path.cwd() / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return prefix + str(path)


def _file_warehouse(warehouse: str) -> str:
    if "://" in warehouse:
        return warehouse
    path = Path(warehouse)
    path = path if path.is_absolute() else Path.cwd() / path
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def load_catalog(cfg: CatalogConfig) -> Catalog:
    if cfg.type == "sql":
        return _sql_catalog(cfg)
    props = {"uri": cfg.rest_uri, "warehouse": cfg.warehouse, **cfg.properties}
    if cfg.region:
        props.update(
            {
                "rest.sigv4-enabled": "true",
                "rest.signing-name": cfg.signing_name,
                "rest.signing-region": cfg.region,
            }
        )
    return RestCatalog(cfg.name, **props)


def _sql_catalog(cfg: CatalogConfig, attempts: int = 3) -> SqlCatalog:
    """The embedded catalog. On a new database SqlCatalog creates its own tables, and two creators at
    once (a flow's sinks and its sink child all open the catalog as the flow starts) both find them
    absent: the loser fails with "table iceberg_tables already exists". The tables are there then, so
    opening it again is all it takes (6 threads on a new database failed so in 28 of 30 trials)."""
    uri, warehouse = _sqlite_uri(cfg.uri), _file_warehouse(cfg.warehouse)
    for _ in range(attempts - 1):
        try:
            return SqlCatalog(cfg.name, uri=uri, warehouse=warehouse, **cfg.properties)
        except OperationalError as exc:
            if "already exists" not in str(exc):
                raise
    return SqlCatalog(cfg.name, uri=uri, warehouse=warehouse, **cfg.properties)


def table_properties(parquet: ParquetConfig) -> dict[str, str]:
    props = {
        "format-version": "2",
        "write.parquet.compression-codec": parquet.compression
        if parquet.compression != "none"
        else "uncompressed",
        "write.target-file-size-bytes": str(parquet.target_mb * 1024 * 1024),
        "write.parquet.row-group-limit": str(parquet.row_group_rows),
        "commit.manifest-merge.enabled": "true",
        "cryptoflow.schema-version": SCHEMA_VERSION,
    }
    if parquet.compression_level is not None:
        props["write.parquet.compression-level"] = str(parquet.compression_level)
    return props


def ensure_table(catalog: Catalog, namespace: str, table: TableDef, parquet: ParquetConfig) -> Table:
    """Load the table, creating namespace and table on first use (safe when several writers race)."""
    identifier = (namespace, table.name)
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        pass
    try:
        catalog.create_namespace(namespace)
    except NamespaceAlreadyExistsError:
        pass
    except Exception:  # SqlCatalog: a concurrent creator wins the INSERT (IntegrityError)
        if not catalog.namespace_exists(namespace):
            raise
    try:
        created = catalog.create_table(
            identifier,
            schema=table.schema,
            partition_spec=table.partition_spec,
            sort_order=table.sort_order,
            properties=table_properties(parquet),
        )
        log.info("created table %s.%s", namespace, table.name)
        return created
    except TableAlreadyExistsError:
        return catalog.load_table(identifier)
