"""`IcebergSink.prepare`: the catalog starts and the table is created on a thread of its own, so the
partition Bytewax builds on the first write (on the worker thread, while the first rows wait) only
loads the table; and that load is fresh, so the partition's state is as current as before."""

from __future__ import annotations

import logging
import threading

import connectors.iceberg.sink as sink_module
from connectors.iceberg.sink import IcebergSink, SinkState
from cryptoflow.config import ParquetConfig
from tests.support.sinks import FAST, TICKS, catalog_cfg, load, trade

THREAD = FAST.model_copy(update={"executor": "thread"})
STEP = "ticks.iceberg"


def sink(tmp_path) -> IcebergSink:
    return IcebergSink(TICKS, catalog_cfg(tmp_path), ParquetConfig(), "ticks", THREAD)


def build(s: IcebergSink, resume=None):
    return s.build_part(STEP, s.list_parts()[0], resume)


def record_threads(monkeypatch) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    for name in ("load_catalog", "ensure_table"):
        real = getattr(sink_module, name)

        def wrapped(*args, _real=real, _name=name, **kwargs):
            calls.append((_name, threading.current_thread().name))
            return _real(*args, **kwargs)

        monkeypatch.setattr(sink_module, name, wrapped)
    return calls


def test_a_prepared_sink_starts_the_catalog_and_creates_the_table_off_the_building_thread(
    tmp_path, monkeypatch
):
    calls = record_threads(monkeypatch)
    s = sink(tmp_path)
    s.prepare()
    s.prepare()  # once
    p = build(s)
    assert sorted(calls) == [("ensure_table", "ticks-prepare"), ("load_catalog", "ticks-prepare")]
    p.write_batch([trade(0, o) for o in range(3)])
    assert p.snapshot() == SinkState(1, {0: 2})
    p.drain()
    p.close()
    assert int(load_table(tmp_path).current_snapshot().summary["total-records"]) == 3


def test_without_prepare_the_partition_builds_everything_itself(tmp_path, monkeypatch):
    calls = record_threads(monkeypatch)
    build(sink(tmp_path)).close()
    assert sorted(calls) == [("ensure_table", "MainThread"), ("load_catalog", "MainThread")]


def test_the_prepared_partition_reads_the_table_as_it_is_at_build_time(tmp_path):
    prepared = sink(tmp_path)
    prepared.prepare()
    prepared.wait_prepared()  # the table exists; now another incarnation commits an epoch
    other = build(sink(tmp_path))
    other.write_batch([trade(0, o) for o in range(5)])
    other.snapshot()
    other.drain()
    other.close()
    p = build(prepared)
    assert p.state == SinkState(1, {0: 4})  # not the empty table the preparation saw
    p.close()


def test_a_failed_preparation_is_done_again_when_the_partition_is_built(tmp_path, monkeypatch, caplog):
    real, failures = sink_module.load_catalog, []

    def flaky(cfg):
        if not failures:
            failures.append(1)
            raise OSError("catalog not reachable yet")
        return real(cfg)

    monkeypatch.setattr(sink_module, "load_catalog", flaky)
    s = sink(tmp_path)
    s.prepare()
    s.wait_prepared()  # a failed preparation does not raise here: the build does it again
    with caplog.at_level(logging.WARNING, logger="connectors.iceberg.sink"):
        p = build(s)
    assert failures == [1]
    assert "preparing the table failed (catalog not reachable yet); trying again" in caplog.text
    p.write_batch([trade(0, 1)])
    assert p.snapshot() == SinkState(1, {0: 1})
    p.drain()
    p.close()


def load_table(tmp_path):
    from connectors.iceberg.catalog import load_catalog

    return load(load_catalog(catalog_cfg(tmp_path)))
