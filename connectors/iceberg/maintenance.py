"""Bounded table metadata: snapshot expiry and metadata-log limits that cannot break exactly-once.

Every commit adds a snapshot (~9 KB) to the table metadata, in memory and in each metadata.json, so an
unexpired 24/7 table grows without bound. Expiry is safe because a writer's recovery state no longer
lives only in snapshot summaries: the sink commits it as the table property `writer_key(writer_id)` in
the same transaction as the append (connectors/iceberg/sink.py), and properties survive any expiry.
A writer of the older version (summary only, no property) is migrated here: the expiry commit first
copies each such writer's latest summary into its property, atomically with removing snapshots, so a
table written before this change keeps every writer's state (docs/exactly-once.md, "Bounded metadata").
"""

from __future__ import annotations

import json
import time
from typing import Any

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table.refs import MAIN_BRANCH
from pyiceberg.table.snapshots import ancestors_of
from pyiceberg.table.update import AssertRefSnapshotId, RemoveSnapshotsUpdate

from cryptoflow.config import SinkConfig

WRITER_ID = "cryptoflow.writer-id"
SEQ = "cryptoflow.seq"
WATERMARK = "cryptoflow.watermark"
# table property per writer: JSON {"seq": n, "watermark": {shard: offset}}, set with each append
WRITER_PREFIX = "cryptoflow.writer."
PREVIOUS_VERSIONS_MAX = "write.metadata.previous-versions-max"
DELETE_AFTER_COMMIT = "write.metadata.delete-after-commit.enabled"


def writer_key(writer_id: str) -> str:
    return WRITER_PREFIX + writer_id


def writer_value(seq: int, watermark: dict[int, int]) -> str:
    return json.dumps({"seq": seq, "watermark": {str(k): v for k, v in sorted(watermark.items())}})


def metadata_properties(cfg: SinkConfig) -> dict[str, str]:
    """Table properties that bound the metadata log and the metadata.json files left behind."""
    return {
        PREVIOUS_VERSIONS_MAX: str(cfg.metadata_versions_max),
        DELETE_AFTER_COMMIT: "true" if cfg.metadata_delete_after_commit else "false",
    }


def legacy_properties(metadata: Any) -> dict[str, str]:
    """Watermark properties to carry over from snapshot summaries before those snapshots can go: for
    each writer in the ancestry whose latest summary is ahead of its property (or that has none, i.e.
    it committed with the older version), the property that summary implies."""
    props, seen, carry = metadata.properties, set(), {}
    current = metadata.current_snapshot()
    if current is None:
        return carry
    for snap in ancestors_of(current, metadata):
        summary = snap.summary.additional_properties if snap.summary else {}
        writer = summary.get(WRITER_ID)
        if writer is None or writer in seen or SEQ not in summary:
            continue
        seen.add(writer)
        seq, marks = int(summary[SEQ]), json.loads(summary.get(WATERMARK) or "{}")
        stored = props.get(writer_key(writer))
        if stored is None or int(json.loads(stored).get("seq", -1)) < seq:
            carry[writer_key(writer)] = writer_value(seq, {int(k): int(v) for k, v in marks.items()})
    return carry


def expirable(metadata: Any, now_ms: int, max_age_s: float, min_keep: int) -> list[int]:
    """Snapshots older than `max_age_s`, except the newest `min_keep` and branch/tag heads."""
    snaps = sorted(metadata.snapshots, key=lambda s: (s.sequence_number or 0, s.timestamp_ms))
    keep = {s.snapshot_id for s in snaps[-min_keep:]}
    keep |= {ref.snapshot_id for ref in metadata.refs.values()}
    cutoff = now_ms - int(max_age_s * 1000)
    return [s.snapshot_id for s in snaps if s.timestamp_ms < cutoff and s.snapshot_id not in keep]


def expire_snapshots(table: Any, cfg: SinkConfig, now_ms: int | None = None, attempts: int = 3) -> int:
    """Expire what `expirable` selects in one commit that also carries summaries into watermark
    properties (`legacy_properties`), so no writer's recovery state leaves the metadata; returns how
    many snapshots were removed. The table object is updated in place. Files are not deleted (see
    docs/exactly-once.md). A concurrent commit (CommitFailedException) or a snapshot another writer
    expired first (ValueError) makes it refresh and try again, `attempts` times in all."""
    for attempt in range(1, attempts + 1):
        now = int(time.time() * 1000) if now_ms is None else now_ms
        ids = expirable(table.metadata, now, cfg.snapshot_max_age_s, cfg.snapshot_min_keep)
        if not ids:
            return 0
        carry = legacy_properties(table.metadata)
        tx = table.transaction()
        if carry:
            # the carried values were read from this snapshot: a commit in between must fail ours
            head = table.metadata.current_snapshot_id
            tx._stage((), (AssertRefSnapshotId(snapshot_id=head, ref=MAIN_BRANCH),))
            tx.set_properties(carry)
        # the update ExpireSnapshots.by_ids() stages, staged once: by_ids() re-derives (deep-copies)
        # the whole transaction metadata twice per id, 1.3 s for 50 ids where the commit takes 40 ms;
        # `expirable` already excludes branch and tag heads
        tx._stage((RemoveSnapshotsUpdate(snapshot_ids=ids),))
        try:
            tx.commit_transaction()
            return len(ids)
        except (CommitFailedException, ValueError):
            if attempt == attempts:
                raise
            table.refresh()
    return 0
