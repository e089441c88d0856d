"""The embedded catalog opened by several threads at once on a new database (a flow's sinks and its sink
child do that as the flow starts): every one opens it (SqlCatalog's own table creation races)."""

from __future__ import annotations

import threading

from connectors.iceberg.catalog import load_catalog
from cryptoflow.config import CatalogConfig
from tests.support.sinks import catalog_cfg


def open_at_once(cfg: CatalogConfig, threads: int) -> list[str]:
    """The errors of `threads` threads opening the catalog at the same moment."""
    barrier, errors = threading.Barrier(threads), []

    def open_it() -> None:
        barrier.wait()
        try:
            load_catalog(cfg).list_namespaces()
        except Exception as exc:  # what the flow would have died of
            errors.append(repr(exc))

    started = [threading.Thread(target=open_it) for _ in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join()
    return errors


def test_threads_opening_a_new_embedded_catalog_at_once_all_succeed(tmp_path) -> None:
    for trial in range(10):  # without the retry, 28 of 30 such trials had a failure
        (tmp_path / str(trial)).mkdir()
        assert open_at_once(catalog_cfg(tmp_path / str(trial)), 6) == []
