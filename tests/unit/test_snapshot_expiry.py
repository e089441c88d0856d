"""Bounded metadata on a real SqlCatalog: snapshot expiry keeps every writer's recovery exact (a quiet
writer whose only commit was expired, a table written by the older version), and the metadata stays
bounded in snapshots, metadata.json bytes and metadata files over many commits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

from connectors.iceberg.maintenance import (
    DELETE_AFTER_COMMIT,
    PREVIOUS_VERSIONS_MAX,
    expirable,
    expire_snapshots,
    legacy_properties,
    writer_key,
    writer_value,
)
from connectors.iceberg.sink import (
    IcebergSinkPartition,
    SinkState,
    ancestry_state,
    commit_properties,
    committed_state,
    find_commit,
)
from cryptoflow.config import SinkConfig
from tests.support.sinks import TICKS, commit_epoch, load, trade

QUIET, BUSY = "gaps/quiet/committer", "gaps/busy/committer"
EXPIRE = SinkConfig(
    commit_attempts=5, retry_initial_s=0.001, retry_max_s=0.01,
    expire_every_commits=4, snapshot_max_age_s=0, snapshot_min_keep=3,
)  # fmt: skip


def writer(catalog, writer_id, resume=None, cfg=EXPIRE) -> IcebergSinkPartition:
    return IcebergSinkPartition(TICKS, load(catalog), writer_id, resume, cfg, reload=lambda: load(catalog))


def feed(p, shard: int, offsets, per_epoch: int) -> None:
    """Write `offsets` of `shard` in epochs of `per_epoch` rows, one commit each."""
    offsets = list(offsets)
    for i in range(0, len(offsets), per_epoch):
        p.write_batch([trade(shard, o) for o in offsets[i : i + per_epoch]])
        commit_epoch(p)


def trade_ids(catalog) -> Counter:
    return Counter(load(catalog).scan().to_arrow().column("trade_id").to_pylist())


def test_a_quiet_writers_expired_commit_still_recovers_exactly(catalog):
    quiet = writer(catalog, QUIET)
    feed(quiet, 1, range(0, 5), 5)  # one commit, then quiet
    busy = writer(catalog, BUSY)
    feed(busy, 0, range(0, 60), 2)  # 30 commits, expiry every 4
    table = load(catalog)
    assert len(table.snapshots()) <= EXPIRE.snapshot_min_keep + EXPIRE.expire_every_commits
    # the quiet writer's only commit is gone from the metadata: the ancestry walk alone would replay
    assert ancestry_state(table, QUIET) == SinkState()
    assert committed_state(table, QUIET) == SinkState(1, {1: 4})
    assert committed_state(table, BUSY) == SinkState(30, {0: 59})
    # both restart without Bytewax state and replay everything they ever read, plus new input
    quiet2, busy2 = writer(catalog, QUIET), writer(catalog, BUSY)
    feed(quiet2, 1, range(0, 8), 3)
    feed(busy2, 0, range(0, 64), 7)
    got = trade_ids(catalog)
    expected = {str(100_000 + o) for o in range(8)} | {str(o) for o in range(64)}
    assert set(got) == expected and set(got.values()) == {1}  # no loss, no duplicate


def test_find_commit_reads_the_property_after_expiry(catalog):
    p = writer(catalog, BUSY)
    feed(p, 0, range(0, 40), 2)  # 20 commits
    table = load(catalog)
    oldest_kept = min(int(s.summary.additional_properties["cryptoflow.seq"]) for s in table.snapshots())
    assert oldest_kept > 1  # seq 1's snapshot was expired
    assert find_commit(table, BUSY, 1) and find_commit(table, BUSY, 20)
    assert not find_commit(table, BUSY, 21)


def legacy_commit(catalog, writer_id: str, shard: int, offsets, seq: int) -> None:
    """A commit exactly as the older version made it: summary only, no watermark property."""
    rows = [trade(shard, o) for o in offsets]
    state = SinkState(seq, {shard: max(offsets)})
    arrow = TICKS.to_arrow([p.row for p in rows])
    load(catalog).append(arrow, snapshot_properties=commit_properties(writer_id, state))


def test_a_table_written_by_the_older_version_migrates_without_replay(catalog):
    """A writer that committed only the old way (summary, no property), also while the new version
    already expires (a rolling upgrade): expiry copies its latest summary into its property before the
    snapshot goes, so its restart on this version replays nothing twice."""
    legacy_commit(catalog, QUIET, 1, range(0, 5), 1)
    assert writer_key(QUIET) not in load(catalog).metadata.properties
    busy = writer(catalog, BUSY)
    feed(busy, 0, range(0, 20), 2)  # 10 commits: two expiry rounds
    table = load(catalog)
    assert ancestry_state(table, QUIET) == SinkState()  # its snapshot is gone ...
    assert committed_state(table, QUIET) == SinkState(1, {1: 4})  # ... its state is not
    legacy_commit(catalog, QUIET, 1, range(5, 7), 2)  # the old version is still running
    assert legacy_properties(load(catalog).metadata) == {writer_key(QUIET): writer_value(2, {1: 6})}
    busy.table = load(catalog)
    feed(busy, 0, range(20, 40), 2)
    table = load(catalog)
    assert ancestry_state(table, QUIET) == SinkState()
    assert committed_state(table, QUIET) == SinkState(2, {1: 6})
    assert legacy_properties(table.metadata) == {}
    # the legacy writer restarts on this version without Bytewax state and replays: nothing twice
    quiet = writer(catalog, QUIET)
    feed(quiet, 1, range(0, 9), 4)
    got = trade_ids(catalog)
    assert len(got) == 9 + 40 and set(got.values()) == {1}


def test_expiry_racing_another_writer_keeps_both_commits(catalog):
    """Two writers of one table: the expiry commit is applied to the catalog's current metadata, so a
    commit that landed after the expirer last read the table survives it."""
    manual = SinkConfig(expire_every_commits=0)
    busy, other = writer(catalog, BUSY, cfg=manual), writer(catalog, QUIET, cfg=manual)
    feed(busy, 0, range(0, 8), 2)  # 4 commits: busy's view has one snapshot to expire
    feed(other, 1, range(0, 3), 3)  # busy's table object does not know this commit
    oldest = min(busy.table.snapshots(), key=lambda s: s.sequence_number).snapshot_id
    before = {s.snapshot_id for s in load(catalog).snapshots()}
    assert expire_snapshots(busy.table, EXPIRE) == 1
    after = {s.snapshot_id for s in load(catalog).snapshots()}
    assert before - after == {oldest} and len(after) == 4
    assert load(catalog).current_snapshot().summary.additional_properties["cryptoflow.writer-id"] == QUIET
    assert sorted(trade_ids(catalog)) == sorted(
        [str(o) for o in range(8)] + [str(100_000 + o) for o in range(3)]
    )


def test_expirable_keeps_the_newest_the_young_and_the_branch_head(catalog):
    p = writer(catalog, BUSY, cfg=SinkConfig(expire_every_commits=0))
    feed(p, 0, range(0, 12), 2)  # 6 commits, no expiry
    meta = load(catalog).metadata
    snaps = sorted(meta.snapshots, key=lambda s: s.sequence_number)
    now = snaps[-1].timestamp_ms + 1
    assert expirable(meta, now, 0, 2) == [s.snapshot_id for s in snaps[:-2]]
    assert expirable(meta, now, 3600, 1) == []  # all younger than an hour
    cut = snaps[3].timestamp_ms  # only strictly older snapshots go
    picked = expirable(meta, now, (now - cut) / 1000, 1)
    assert picked == [s.snapshot_id for s in snaps if s.timestamp_ms < cut]


def metadata_file(catalog) -> Path:
    return Path(urlparse(load(catalog).metadata_location).path)


def test_metadata_stays_bounded_over_many_commits(catalog):
    cfg = SinkConfig(
        expire_every_commits=10, snapshot_max_age_s=0, snapshot_min_keep=5, metadata_versions_max=8,
    )  # fmt: skip
    p = writer(catalog, BUSY, cfg=cfg)
    sizes = []
    for epoch in range(120):
        p.write_batch([trade(0, epoch)])
        commit_epoch(p)
        if epoch % 10 == 9:
            table = load(catalog)
            assert len(table.snapshots()) <= cfg.snapshot_min_keep + cfg.expire_every_commits
            assert len(table.metadata.metadata_log) <= cfg.metadata_versions_max
            sizes.append(metadata_file(catalog).stat().st_size)
    table = load(catalog)
    assert table.metadata.properties[PREVIOUS_VERSIONS_MAX] == "8"
    assert table.metadata.properties[DELETE_AFTER_COMMIT] == "true"
    # same phase of the expiry cycle, 60 commits apart: the same size (± the growing numbers' digits)
    assert abs(sizes[-1] - sizes[5]) < 0.05 * sizes[5], sizes
    # old metadata.json files are deleted after each commit
    on_disk = list(metadata_file(catalog).parent.glob("*.metadata.json"))
    assert len(on_disk) <= cfg.metadata_versions_max + 1, len(on_disk)
    # every row is still readable: expired snapshots' files are not needed by a scan
    assert sorted(int(t) for t in trade_ids(catalog)) == list(range(120))


def test_without_expiry_the_metadata_grows(catalog):
    """The control for the bound above: the same commits with expiry off grow the metadata."""
    p = writer(catalog, BUSY, cfg=SinkConfig(expire_every_commits=0))
    sizes = []
    for epoch in range(40):
        p.write_batch([trade(0, epoch)])
        commit_epoch(p)
        if epoch in (9, 39):
            sizes.append(metadata_file(catalog).stat().st_size)
    assert len(load(catalog).snapshots()) == 40
    assert sizes[1] > 2 * sizes[0]


def test_a_failing_expiry_is_counted_and_the_flow_goes_on(catalog, monkeypatch):
    import connectors.iceberg.sink as sink
    from cryptoflow import metrics

    calls = []

    def broken(table, cfg):
        calls.append(len(table.snapshots()))
        raise ValueError("Snapshot with snapshot id 1 does not exist")  # another writer expired it

    monkeypatch.setattr(sink, "expire_snapshots", broken)
    errors = metrics.SNAPSHOTS_EXPIRED.labels("ticks", "error")
    before = errors._value.get()
    p = writer(catalog, BUSY)
    feed(p, 0, range(0, 16), 2)  # 8 commits: two expiry rounds, both fail
    assert len(calls) == 2 and errors._value.get() - before == 2
    assert p.state == SinkState(8, {0: 15}) and len(load(catalog).snapshots()) == 8
    monkeypatch.undo()
    feed(p, 0, range(16, 24), 2)  # the next round works
    assert len(load(catalog).snapshots()) <= EXPIRE.snapshot_min_keep + EXPIRE.expire_every_commits
    assert sorted(int(t) for t in trade_ids(catalog)) == list(range(24))


def test_a_commit_whose_base_snapshot_another_writer_expired_is_retried(catalog):
    """Writer A's table object still starts from its own last snapshot when writer B has committed and
    expired it: pyiceberg's conflict retry cannot rebase ("Cannot find starting snapshot"), nothing
    landed, and the sink retries on the reloaded table: every row once (seen in a chaos run)."""
    from cryptoflow import metrics

    manual = SinkConfig(commit_attempts=5, retry_initial_s=0.001, retry_max_s=0.01, expire_every_commits=0)
    a = writer(catalog, QUIET, cfg=manual)
    feed(a, 1, range(0, 3), 3)
    base = a.table.metadata.current_snapshot_id
    aggressive = SinkConfig(expire_every_commits=1, snapshot_max_age_s=0, snapshot_min_keep=1)
    feed(writer(catalog, BUSY, cfg=aggressive), 0, range(0, 6), 2)
    assert base not in {s.snapshot_id for s in load(catalog).snapshots()}
    conflicts = metrics.COMMIT_RETRIES.labels("ticks", "conflict")
    before = conflicts._value.get()
    feed(a, 1, range(3, 6), 3)  # starts from `base`
    assert conflicts._value.get() - before == 1
    assert committed_state(load(catalog), QUIET) == SinkState(2, {1: 5})
    got = trade_ids(catalog)
    assert len(got) == 12 and set(got.values()) == {1}
