"""Exactly-once Iceberg sink: one committer partition per table, one atomic commit per Bytewax epoch.

The table is the source of truth (iceberg-notes.md sections 4 and 6.2). Every commit records
`cryptoflow.writer-id`, `cryptoflow.seq` and the per-shard watermark (the highest triggering source
offset it covers) in the snapshot summary, and the same seq and watermark as the table property
`cryptoflow.writer.<writer-id>`, set in the same atomic transaction as the append: the property
survives snapshot expiry (connectors/iceberg/maintenance.py), the summaries do not. On start the
partition reads its property (falling back to the ancestry walk for tables written before the
property existed) and takes the max of that and Bytewax's saved state, because the table is ahead after
a crash between the Iceberg commit and the Bytewax snapshot. Rows at or below the watermark are
replays of committed input and are dropped. A commit whose outcome is unknown (HTTP 500, timeout,
storage error) is reconciled by looking up `(writer-id, seq)` in the reloaded table before retrying.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from bisect import bisect_right
from concurrent.futures import Future, wait
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import pyarrow as pa
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from pyiceberg.exceptions import (
    CommitFailedException,
    CommitStateUnknownException,
    RESTError,
    ValidationException,
)
from pyiceberg.table.snapshots import ancestors_of

from connectors import doorbell
from connectors.iceberg.background import SerialWorker
from connectors.iceberg.catalog import ensure_table, load_catalog
from connectors.iceberg.maintenance import (
    SEQ,
    WATERMARK,
    WRITER_ID,
    expire_snapshots,
    metadata_properties,
    writer_key,
    writer_value,
)
from connectors.iceberg.ordering import sort_rows
from connectors.iceberg.remote import RemoteTable, SinkProcess
from connectors.iceberg.staging import StagedCommit, commit_append, from_ipc, to_ipc, write_data_files
from cryptoflow import allocator, metrics
from cryptoflow.config import CatalogConfig, ParquetConfig, SinkConfig
from cryptoflow.observability import HEALTH
from cryptoflow.schemas import TableDef
from operators.positioned import Positioned, PositionedBatch

log = logging.getLogger(__name__)

# Failures after which the commit may or may not have landed: reload, look, then retry.
# ValidationException: pyiceberg's own conflict retry could not rebase our append, e.g. "Cannot find
# starting snapshot" when another writer of the table expired the snapshot our transaction started
# from; nothing landed, and a fresh transaction on the reloaded table is a plain append again.
RETRYABLE = (
    CommitFailedException,
    CommitStateUnknownException,
    ValidationException,
    RESTError,
    OSError,
    TimeoutError,
)

# Buffered row objects are handed to the stager thread this many at a time, which converts them to
# Arrow during the epoch: the rows then sit in compact columns instead of Python objects (less memory,
# less for the garbage collector to walk), and the epoch's end only converts the last few. Same rows,
# same order, same commit as converting everything at the end. The seal waits for the conversion of
# the last piece, so a piece is small: 250 `spot_ob` rows convert and serialize in ~2.5 ms (1,000
# rows ~7 ms, 2,000 rows 10-20 ms; seal 3-8 ms against 8-16 ms with 1,000). The price: more hand-overs,
# ~5 us more per 10-row batch in `write_batch`, and the tail's IPC bytes grow by ~2 %.
CONVERT_EVERY = 250
# With an idle worker (its partitions wait in a doorbell, connectors/doorbell.py) the worker converts the
# buffered rows itself, IDLE_PIECE_ROWS at a time, whenever it has nothing else to do: no second thread
# holds the GIL while frames wait (docs/benchmarks.md, round 14).
# A piece is converted in an idle moment only once the buffer has been filling for IDLE_MIN_AGE_S (since
# it last went from empty to holding rows): rows that arrive fast (a busy worker, whose idle moments are
# short) reach CONVERT_EVERY first and go to the stager, whose conversion overlaps the worker's work
# (pyarrow releases the GIL in parts).
IDLE_PIECE_ROWS = 100
IDLE_MIN_AGE_S = 0.02


@dataclass(eq=False)
class _Chunk:
    """Converted pieces that become one sorted write of data files, and their IPC streams, kept until
    the files exist (the seal puts the streams of a chunk without files into the state)."""

    arrows: list[Any] = field(default_factory=list)
    blobs: list[bytes] = field(default_factory=list)
    rows: int = 0
    files: list[Any] | None = None  # set by the writer thread, under the partition's chunk lock
    written: Future | None = None  # the writer's job for this chunk


@dataclass
class SinkState:
    """What Bytewax stores per epoch: the writer's seq and watermark (equality means these) and the
    staged epochs up to that seq whose commit had not landed when the state was taken."""

    seq: int = 0
    watermark: dict[int, int] = field(default_factory=dict)
    staged: tuple[StagedCommit, ...] = field(default=(), compare=False)


def merge_states(a: SinkState, b: SinkState) -> SinkState:
    """The furthest of two states: max seq, per-shard max watermark."""
    shards = a.watermark.keys() | b.watermark.keys()
    return SinkState(
        max(a.seq, b.seq), {s: max(a.watermark.get(s, -1), b.watermark.get(s, -1)) for s in shards}
    )


def commit_properties(writer_id: str, state: SinkState) -> dict[str, str]:
    return {
        WRITER_ID: writer_id,
        SEQ: str(state.seq),
        WATERMARK: json.dumps({str(k): v for k, v in sorted(state.watermark.items())}),
    }


def property_state(table: Any, writer_id: str) -> SinkState | None:
    """The state `writer_id` committed as a table property with its latest append; None if the
    writer never committed with this version (or the value is unreadable: logged, then the ancestry
    walk decides)."""
    raw = table.metadata.properties.get(writer_key(writer_id))
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return SinkState(int(data["seq"]), {int(k): int(v) for k, v in data["watermark"].items()})
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.error("unreadable watermark property %s=%r (%s); using the ancestry walk", writer_id, raw, exc)
        return None


def ancestry_state(table: Any, writer_id: str) -> SinkState:
    """The latest commit of `writer_id` in the current snapshot's ancestry (Flink's approach); what
    tables written before the watermark property rely on."""
    for snap in ancestors_of(table.current_snapshot(), table.metadata):
        props = snap.summary.additional_properties if snap.summary else {}
        if props.get(WRITER_ID) == writer_id and SEQ in props:
            marks = json.loads(props.get(WATERMARK) or "{}")
            return SinkState(int(props[SEQ]), {int(k): int(v) for k, v in marks.items()})
    return SinkState()


def committed_state(table: Any, writer_id: str) -> SinkState:
    """The writer's last committed state: the property, or the ancestry if that is further (a table
    written by the older version, or by it again after this one)."""
    walked = ancestry_state(table, writer_id)
    stored = property_state(table, writer_id)
    return walked if stored is None or walked.seq > stored.seq else stored


def find_commit(table: Any, writer_id: str, seq: int) -> bool:
    """Whether `(writer_id, seq)` landed (used to reconcile an unknown outcome): the property says so
    at once (it commits atomically with the append), the ancestry for older tables."""
    stored = property_state(table, writer_id)
    if stored is not None and stored.seq >= seq:
        return True
    for snap in ancestors_of(table.current_snapshot(), table.metadata):
        props = snap.summary.additional_properties if snap.summary else {}
        if props.get(WRITER_ID) == writer_id:
            found = int(props.get(SEQ, "-1"))
            if found == seq:
                return True
            if found < seq:  # older commits of ours below: ours is not there
                return False
    return False


class CommitLedger(Protocol):
    """Optional fence and audit log around commits (connectors/iceberg/ledger.py)."""

    def begin(self, table: str, writer_id: str, seq: int, watermark: dict[int, int], rows: int) -> None: ...
    def committed(self, table: str, writer_id: str, seq: int) -> None: ...
    def reconcile(self, table: str, writer_id: str, table_state: SinkState, landed: Any) -> None: ...


class BackgroundCommitError(RuntimeError):
    """A background commit (or its expiry/ledger step) failed after its retries: the flow must stop,
    and recovery resumes from the last durable state (the staged epoch is committed then)."""


class StagedFilesMissing(RuntimeError):
    """A staged epoch's data files are gone before its commit: its rows cannot be restored."""


class IcebergSinkPartition(StatefulSinkPartition[Any, SinkState]):
    """Two-phase commit off the worker thread (docs/exactly-once.md, "Two-phase commit").

    The worker only filters replays and hands row lists over. A stager thread converts them to Arrow
    and to compressed Arrow IPC bytes during the epoch (or the worker itself, in its idle moments, when
    its partitions wait in a doorbell: `run_idle`), and hands every `sink.stage_rows` rows to a
    writer thread that sorts them and writes their data files (pyiceberg's writer). At `snapshot()` the
    worker seals the epoch and waits only for the conversion of the rows handed over last: the state
    carries the files written so far plus the IPC bytes of the rows not in files yet (`StagedCommit`),
    so it never claims rows it cannot restore. A committer thread then waits for the rest of the
    epoch's files and appends them all to the table in one commit, strictly in seq order; a failure
    there is raised by the next `write_batch`/`snapshot`. On resume, staged epochs the table lacks are
    committed first (their tail's files written from the state), once."""

    def __init__(
        self,
        table_def: TableDef,
        table: Any,
        writer_id: str,
        resume: SinkState | None,
        retry: SinkConfig | None = None,
        reload: Any = None,
        ledger: CommitLedger | None = None,
        remote: RemoteTable | None = None,
    ) -> None:
        self.table_def, self.table, self.writer_id = table_def, table, writer_id
        # `sink.executor: process`: files, commits, reloads and expiry run in the sink child on its own
        # copy of the table (connectors/iceberg/remote.py); None runs them here, on `table`
        self.remote = remote
        # thread mode: the writer and committer threads never use `table` at the same time (a commit
        # deep-copies its metadata while a write fills pyiceberg's lazily cached properties into it)
        self.table_lock = threading.Lock()
        self.retry = retry or SinkConfig()
        self.reload = reload or (lambda: self.table.refresh())
        self.ledger = ledger
        name = table_def.name
        in_table = committed_state(table, writer_id)
        if ledger is not None:
            ledger.reconcile(name, writer_id, in_table, lambda seq: find_commit(self.table, writer_id, seq))
        self.commits_since_expiry = 0
        if resume is not None and resume.staged:
            in_table = self._commit_staged_on_resume(resume.staged, in_table)
        self.state = merge_states(in_table, resume or SinkState())
        if resume is not None and in_table.seq > resume.seq:
            log.info(
                "%s: table is ahead of the recovery state (seq %d > %d); replayed rows up to %s are dropped",
                name, in_table.seq, resume.seq, in_table.watermark,
            )  # fmt: skip
        self.buffer: list[Any] = []
        self.buffered_at = 0.0  # when the buffer last went from empty to holding rows
        self.converted: list[Future] = []  # Arrow tables of handed-over rows, in order
        self.pending: dict[int, int] = {}
        self.staged: list[StagedCommit] = []  # sealed epochs whose commit may not have landed yet
        self.landed_seq = self.state.seq  # written by the committer thread only
        self.failure: BaseException | None = None  # the committer's, raised in the worker
        # the stager thread's epoch: the chunk being filled, the chunks handed to the writer
        self.open_chunk = _Chunk()
        self.epoch_chunks: list[_Chunk] = []
        self.chunk_lock = threading.Lock()
        self.tail_writes: dict[int, list[Future]] = {}  # seq -> writes its commit must wait for
        self.all_files: dict[int, tuple[Any, ...]] = {}  # seq -> every file, once the tail is written
        self.stager = SerialWorker(f"{name}-stage")
        self.staging: Future | None = None  # the stager's last conversion (it runs them in order)
        self.idle_bell: doorbell.Doorbell | None = None  # the worker's, if it converts in idle moments
        self.idle_checked = False
        self.writer = SerialWorker(f"{name}-write")
        self.committer = SerialWorker(f"{name}-commit")
        self.closed = False

    def _commit_staged_on_resume(self, staged: tuple[StagedCommit, ...], in_table: SinkState) -> SinkState:
        """Commit, in seq order, the staged epochs of the recovery state the table does not have yet
        (a crash after the state was saved, before the background commit landed)."""
        name = self.table_def.name
        for commit in sorted(staged, key=lambda c: c.seq):
            if commit.seq <= in_table.seq or find_commit(self.table, self.writer_id, commit.seq):
                log.info("%s: staged seq %d is in the table already; not committing again", name, commit.seq)
                continue
            missing = [f.file_path for f in commit.files if not self.table.io.new_input(f.file_path).exists()]
            if missing:
                metrics.SINK_FAILURES.labels(name, "staged_files_missing").inc()
                log.error("%s: staged seq %d lost %d data files: %s", name, commit.seq, len(missing), missing)
                raise StagedFilesMissing(
                    f"{name}: data files of staged seq {commit.seq} ({commit.rows} rows) are gone: {missing}; "
                    "its rows cannot be restored from this recovery state"
                )
            files = list(commit.files)
            if commit.tail:  # rows whose files were not written when the state was taken
                if self.remote is None:
                    tail = from_ipc(commit.tail)
                    files += self._write_files(sort_rows(tail, self.table_def.sort_keys), commit.seq)
                else:
                    files += self._write_files(None, commit.seq, commit.tail)
                log.info(
                    "%s: staged seq %d: wrote %d tail rows from the state (%d bytes) as %d files",
                    name, commit.seq, sum(f.record_count for f in files[len(commit.files) :]),
                    commit.tail_bytes(), len(files) - len(commit.files),
                )  # fmt: skip
            target = SinkState(commit.seq, dict(commit.watermark))
            self._commit(files, target)
            metrics.ROWS_COMMITTED.labels(name).inc(commit.rows)
            log.info("%s: committed staged seq %d (%d rows) on resume", name, commit.seq, commit.rows)
            in_table = merge_states(in_table, target)
            self._maybe_expire()
        return in_table

    def write_batch(self, values: list[Any]) -> None:
        if self.failure is not None:
            self._raise_failure()
        marks, pending, dropped = self.state.watermark, self.pending, 0
        buffer = self.buffer
        if not buffer:
            self.buffered_at = time.monotonic()
        for value in values:
            if isinstance(value, PositionedBatch):
                # offsets are non-decreasing within a batch: the rows to drop are a prefix
                shard, offsets = value.shard, value.offsets
                if not offsets:
                    continue
                mark = marks.get(shard, -1)
                start = 0 if offsets[0] > mark else bisect_right(offsets, mark)
                dropped += start
                if start < len(offsets):
                    buffer += value.rows[start:] if start else value.rows
                    if offsets[-1] > pending.get(shard, -1):
                        pending[shard] = offsets[-1]
                continue
            if not isinstance(value, Positioned):
                # a flow not wired with PositionedLogic: no triggering offset, so no dedupe (a row's own
                # lineage offset can be below committed rows of other books and still be new)
                buffer.append(value)
                continue
            shard, offset = value.shard, value.offset
            if offset <= marks.get(shard, -1):
                dropped += 1
                continue
            buffer.append(value.row)
            if offset > pending.get(shard, -1):
                pending[shard] = offset
        if dropped:
            metrics.ROWS_DEDUPED.labels(self.table_def.name).inc(dropped)
        if not self.idle_checked:  # the first batch: this is the worker thread
            self._join_idle_bell()
        if len(buffer) >= CONVERT_EVERY:
            self._hand_over()

    def _join_idle_bell(self) -> None:
        """Convert in the worker's idle moments if its partitions wait in a doorbell (otherwise nobody
        would run the slices: the stager converts, as before)."""
        self.idle_checked = True
        bell = doorbell.for_this_thread()
        if bell.serves_sources:
            self.idle_bell = bell
            bell.add_idle_task(self)

    def _leave_idle_bell(self) -> None:
        if self.idle_bell is not None:
            self.idle_bell.remove_idle_task(self)
            self.idle_bell = None

    def run_idle(self) -> bool:
        """Worker thread, idle (`connectors.doorbell`): convert the oldest IDLE_PIECE_ROWS buffered rows
        here, as the stager would have. Not while the stager converts an earlier piece: the two would
        fill the open chunk at once."""
        if len(self.buffer) < IDLE_PIECE_ROWS or time.monotonic() - self.buffered_at < IDLE_MIN_AGE_S:
            return False
        if self.staging is not None and not self.staging.done():
            return False
        piece, self.buffer = self.buffer[:IDLE_PIECE_ROWS], self.buffer[IDLE_PIECE_ROWS:]
        done: Future = Future()
        try:
            done.set_result(self._convert(piece))
        except Exception as exc:  # raised at the seal, as a failed conversion on the stager is
            done.set_exception(exc)
        self.converted.append(done)
        return True

    def _hand_over(self) -> None:
        """Give the buffered rows to the stager; the worker keeps no reference."""
        self.staging = self.stager.submit(self._convert, self.buffer)
        self.converted.append(self.staging)
        self.buffer = []
        metrics.SINK_HANDOVER_DEPTH.labels(self.table_def.name).set(self.stager.depth())

    def _convert(self, rows: list[Any]) -> None:
        """Stager thread: rows -> Arrow and its IPC bytes (what a seal puts into the state if the rows
        have no files yet); every `sink.stage_rows` rows go to the writer thread as one sorted write,
        during the epoch, so the seal never waits for Parquet."""
        arrow = self.table_def.to_arrow(rows)
        if arrow.num_rows == 0:
            return
        chunk = self.open_chunk
        if self.remote is None:  # the child writes from the IPC bytes
            chunk.arrows.append(arrow)
        chunk.blobs.append(to_ipc(arrow))
        chunk.rows += arrow.num_rows
        every = self.retry.stage_rows
        if every and chunk.rows >= every:
            self._start_write(self.state.seq + 1)

    def _start_write(self, seq: int) -> None:
        """Stager thread: hand the open chunk to the writer thread."""
        chunk, self.open_chunk = self.open_chunk, _Chunk()
        if chunk.rows:
            chunk.written = self.writer.submit(self._write_chunk, chunk, seq)
            self.epoch_chunks.append(chunk)

    def _write_chunk(self, chunk: _Chunk, seq: int) -> list[Any]:
        """Writer thread: sort one chunk and write its data files; then its Arrow and IPC copies go."""
        started = time.perf_counter()
        if self.remote is None:
            arrow = chunk.arrows[0] if len(chunk.arrows) == 1 else pa.concat_tables(chunk.arrows)
            arrow = sort_rows(arrow, self.table_def.sort_keys)
        sorted_at = time.perf_counter()
        files = (
            self._write_files(arrow, seq)
            if self.remote is None
            else self._write_files(None, seq, chunk.blobs)
        )
        with self.chunk_lock:
            chunk.files, chunk.arrows, chunk.blobs = files, [], []
        log.debug(
            "%s: seq %d: %d rows in %d files (sort %.0f ms, files %.0f ms)",
            self.table_def.name, seq, chunk.rows, len(files),
            (sorted_at - started) * 1000, (time.perf_counter() - sorted_at) * 1000,
        )  # fmt: skip
        return files

    def _seal(self) -> tuple[StagedCommit, list[Future]] | None:
        """End the epoch: wait until its last rows are converted; None if it has no rows. Returns the
        staged commit and the writes of its tail (rows in the state, not yet in files)."""
        if self.buffer:
            self._hand_over()
        if not self.converted:
            return None
        pieces, self.converted = self.converted, []
        pending, self.pending = self.pending, {}
        target = merge_states(self.state, SinkState(self.state.seq + 1, pending))
        name, started = self.table_def.name, time.perf_counter()
        try:
            sealed = self.stager.submit(self._stage, pieces, target).result()
        except BaseException:
            metrics.SINK_FAILURES.labels(name, "stage").inc()
            raise
        took = time.perf_counter() - started
        metrics.SINK_SEAL_SECONDS.labels(name).observe(took)
        if sealed is None:
            return None
        self.state = target
        staged, writes = sealed
        tail_bytes = staged.tail_bytes()
        metrics.SINK_SEAL_TAIL_BYTES.labels(name).observe(tail_bytes)
        log.info(
            "%s: sealed seq %d in %.1f ms: %d rows, %d files written, %d chunks in the state (%d bytes)",
            name, staged.seq, took * 1000, staged.rows, len(staged.files), len(writes), tail_bytes,
        )  # fmt: skip
        return sealed

    def _stage(self, pieces: list[Future], target: SinkState) -> tuple[StagedCommit, list[Future]] | None:
        """Stager thread: hand the epoch's last rows to the writer; the staged commit names the files
        written so far and carries the IPC bytes of every chunk still without files."""
        for piece in pieces:  # done (submitted to this thread before us): raise a failed conversion
            piece.result()
        self._start_write(target.seq)
        chunks, self.epoch_chunks = self.epoch_chunks, []
        files: list[Any] = []
        tail: list[bytes] = []
        writes: list[Future] = []
        with self.chunk_lock:  # a chunk has either its files or its blobs, never neither
            for chunk in chunks:
                if chunk.files is not None:
                    files += chunk.files
                else:
                    tail += chunk.blobs
                    writes.append(chunk.written)
        rows = sum(chunk.rows for chunk in chunks)
        if not rows:
            return None
        return StagedCommit(target.seq, dict(target.watermark), tuple(files), rows, tuple(tail)), writes

    def _write_files(self, arrow: Any, seq: int, blobs: Any = ()) -> list[Any]:
        """pyiceberg's own writer (partitioning, field ids, statistics, target file size); storage
        errors are retried with a fresh set of files (a failed attempt's files stay as orphans). With
        the sink child, `blobs` (IPC streams) go there, which sorts them and writes their files."""
        name, delay = self.table_def.name, self.retry.retry_initial_s
        for attempt in range(1, self.retry.commit_attempts + 1):
            try:
                if self.remote is not None:
                    return self.remote.write(blobs, self.table_def.sort_keys)
                with self.table_lock:
                    return write_data_files(self.table, arrow)
            except RETRYABLE as exc:
                reason = _reason(exc)
                metrics.COMMIT_RETRIES.labels(name, reason).inc()
                log.warning("%s: writing the files of seq %d failed (%s: %s)", name, seq, reason, exc)
                if attempt == self.retry.commit_attempts:
                    raise
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.retry.retry_max_s)
        raise AssertionError("unreachable")

    def _commit_in_background(self, staged: StagedCommit) -> None:
        """Committer thread: append a staged epoch, in seq order; after a failure, commit nothing more
        (a later seq landing would make the failed one look committed)."""
        writes = self.tail_writes.pop(staged.seq, [])
        if self.failure is not None:
            return
        name, started = self.table_def.name, time.perf_counter()
        try:
            files = list(staged.files)
            for written in writes:  # the tail's files, written by the writer thread
                files += written.result()
            if writes:  # a later state (commit still pending) names these files instead of the tail
                self.all_files[staged.seq] = tuple(files)
        except BaseException as exc:
            metrics.SINK_FAILURES.labels(name, "tail_files").inc()
            log.error(
                "%s: writing the tail files of seq %d failed: %s: %s", name, staged.seq, type(exc).__name__, exc,
                exc_info=exc,
            )  # fmt: skip
            self.failure = exc
            return
        try:
            self._commit(files, SinkState(staged.seq, dict(staged.watermark)))
        except BaseException as exc:
            metrics.SINK_FAILURES.labels(name, "commit").inc()
            log.error(
                "%s: background commit of seq %d failed: %s: %s", name, staged.seq, type(exc).__name__, exc,
                exc_info=exc,
            )  # fmt: skip
            self.failure = exc
            return
        metrics.COMMIT_SECONDS.labels(name).observe(time.perf_counter() - started)
        metrics.ROWS_COMMITTED.labels(name).inc(staged.rows)
        HEALTH.committed()
        self.landed_seq = staged.seq
        self.all_files.pop(staged.seq, None)
        metrics.SINK_COMMIT_LAG.labels(name).set(self.state.seq - staged.seq)
        log.info("%s: committed %d rows (seq %d)", name, staged.rows, staged.seq)
        self._maybe_expire()
        allocator.release()  # the epoch's buffers are free now: give a burst's pages back (issue #6)

    def _raise_failure(self) -> None:
        exc = self.failure
        raise BackgroundCommitError(
            f"{self.table_def.name}: a background Iceberg commit failed ({type(exc).__name__}: {exc}); "
            "the flow stops and recovery commits the staged epochs"
        ) from exc

    def flush(self) -> None:
        """Seal the epoch and queue its commit (the commit runs after this returns)."""
        if self.failure is not None:
            self._raise_failure()
        sealed = self._seal()
        if sealed is None:
            return
        staged, self.tail_writes[sealed[0].seq] = sealed
        self.staged = [s for s in self.staged if s.seq > self.landed_seq]
        self.staged.append(staged)
        self.committer.submit(self._commit_in_background, staged)
        metrics.SINK_COMMIT_LAG.labels(self.table_def.name).set(self.state.seq - self.landed_seq)

    def drain(self) -> None:
        """Wait for every queued commit; raise a background failure (tests, `close()`)."""
        self.committer.submit(lambda: None).result()
        if self.failure is not None:
            self._raise_failure()
        self.staged = [s for s in self.staged if s.seq > self.landed_seq]

    def _commit(self, files: Any, target: SinkState) -> None:
        """Append once; on failure reload, and retry only if `(writer-id, seq)` did not land."""
        name, props = self.table_def.name, commit_properties(self.writer_id, target)
        table_props = {writer_key(self.writer_id): writer_value(target.seq, target.watermark)}
        if self.ledger is not None:
            rows = sum(f.record_count for f in files)
            self.ledger.begin(name, self.writer_id, target.seq, target.watermark, rows)
        delay = self.retry.retry_initial_s
        for attempt in range(1, self.retry.commit_attempts + 1):
            try:
                self._append(files, props, table_props)
                break
            except RETRYABLE as exc:
                reason = _reason(exc)
                metrics.COMMIT_RETRIES.labels(name, reason).inc()
                log.warning("%s: commit seq %d failed (%s: %s)", name, target.seq, reason, exc)
                if attempt == self.retry.commit_attempts:
                    raise
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.retry.retry_max_s)
                if self._landed(target.seq):
                    metrics.COMMIT_RECONCILED.labels(name, "landed").inc()
                    log.info("%s: commit seq %d had landed; not committing again", name, target.seq)
                    break
                metrics.COMMIT_RECONCILED.labels(name, "absent").inc()
        if self.ledger is not None:
            self.ledger.committed(name, self.writer_id, target.seq)

    def _append(self, files: Any, props: dict[str, str], table_props: dict[str, str]) -> None:
        """One atomic commit: the staged files (snapshot summary = writer, seq, watermark) and the
        writer's watermark property, plus the metadata-log bounds where the table lacks them."""
        bounds = metadata_properties(self.retry)
        if self.remote is not None:
            self.remote.append(files, props, table_props, bounds)
        else:
            with self.table_lock:
                commit_append(self.table, files, props, table_props, bounds)

    def _maybe_expire(self) -> None:
        """Every `expire_every_commits` commits, expire old snapshots (one extra metadata commit).
        A failure (e.g. another writer of a shared table expired the same snapshots first) is
        counted and logged; the next round tries again."""
        every = self.retry.expire_every_commits
        if not every:
            return
        self.commits_since_expiry += 1
        if self.commits_since_expiry < every:
            return
        self.commits_since_expiry = 0
        name, started = self.table_def.name, time.perf_counter()
        try:
            if self.remote is not None:  # the child reloads its table after a failure
                removed, kept = self.remote.expire(self.retry)
            else:
                with self.table_lock:
                    removed = expire_snapshots(self.table, self.retry)
                    kept = len(self.table.metadata.snapshots)
        except Exception as exc:  # never let maintenance stop the flow; the data commit is done
            metrics.SNAPSHOTS_EXPIRED.labels(name, "error").inc()
            log.warning("%s: snapshot expiry failed (%s: %s); retrying later", name, type(exc).__name__, exc)
            if self.remote is None:
                try:
                    with self.table_lock:
                        self.table = self.reload()
                except RETRYABLE as reload_exc:
                    log.warning("%s: reload after the failed expiry failed (%s)", name, reload_exc)
            return
        if removed:
            metrics.SNAPSHOTS_EXPIRED.labels(name, "ok").inc(removed)
        log.info(
            "%s: expired %d snapshots in %.1f ms, %d kept",
            name, removed, (time.perf_counter() - started) * 1000, kept,
        )  # fmt: skip

    def _landed(self, seq: int) -> bool:
        """Reload the table (retrying storage/catalog errors) and look for our commit."""
        delay = self.retry.retry_initial_s
        for attempt in range(1, self.retry.commit_attempts + 1):
            try:
                if self.remote is not None:
                    return self.remote.landed(self.writer_id, seq)
                with self.table_lock:
                    self.table = self.reload()
                    return find_commit(self.table, self.writer_id, seq)
            except RETRYABLE as exc:
                log.warning("%s: reload failed (%s)", self.table_def.name, exc)
                if attempt == self.retry.commit_attempts:
                    raise
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.retry.retry_max_s)
        return False

    def snapshot(self) -> SinkState:
        self.flush()
        staged = tuple(self._lightest(s) for s in self.staged if s.seq > self.landed_seq)
        return SinkState(self.state.seq, dict(self.state.watermark), staged)

    def _lightest(self, staged: StagedCommit) -> StagedCommit:
        """`staged` with its tail replaced by the tail's files once they are written (a commit that
        lags, e.g. retrying through a catalog outage, then no longer keeps the tail in every state)."""
        files = self.all_files.get(staged.seq)
        return staged if files is None else replace(staged, files=files, tail=())

    def close(self) -> None:
        """Commit everything synchronously, then end the threads."""
        if self.closed:
            return
        try:
            self._leave_idle_bell()
            self.flush()
            self.drain()
        finally:
            self.closed = True
            self.stager.stop()
            self.writer.stop()
            self.committer.stop()
            if self.remote is not None:
                self.remote.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (CommitFailedException, ValidationException)):
        return "conflict"
    if isinstance(exc, CommitStateUnknownException):
        return "unknown_state"
    if isinstance(exc, RESTError):
        return "catalog_error"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "io_error"


class IcebergSink(FixedPartitionedSink[Any, SinkState]):
    def __init__(
        self,
        table_def: TableDef,
        catalog: CatalogConfig,
        parquet: ParquetConfig,
        flow_id: str,
        retry: SinkConfig | None = None,
        ledger_factory: Any = None,
    ):
        self.table_def, self.catalog_cfg, self.parquet, self.flow_id = table_def, catalog, parquet, flow_id
        self.retry, self.ledger_factory = retry, ledger_factory
        if self._use_process():  # start the child now: its imports overlap with building the flow
            SinkProcess.shared()
        self._prepared: Future | None = None

    def prepare(self) -> None:
        """Load the catalog and create the table now, on a thread of its own. Bytewax builds a sink
        partition lazily, on its first write: on the worker thread, while the first rows wait. That
        build took 68-110 ms in a fresh flow process with the embedded SqlCatalog, most of it the
        catalog's start and the table's creation (a REST catalog adds its round trips); `build_part`
        now waits for what is left of this and loads the table (~2.5 ms), so the state it reads is as
        current as before. Called after the constructor: a thread alive when the constructor starts
        the sink child would rule out forking it."""
        if self._prepared is not None:
            return
        future: Future = Future()

        def run() -> None:
            try:
                catalog = load_catalog(self.catalog_cfg)
                ensure_table(catalog, self.catalog_cfg.namespace, self.table_def, self.parquet)
            except BaseException as exc:  # build_part does it again and raises the error in the flow
                future.set_exception(exc)
            else:
                future.set_result(catalog)

        self._prepared = future
        threading.Thread(target=run, name=f"{self.table_def.name}-prepare", daemon=True).start()

    def wait_prepared(self) -> None:
        """Return once the preparation (if any) has finished, failed or not: a harness that starts
        its clock right after building the flow waits here, as a deployed flow's clients take longer
        to connect than the preparation takes."""
        if self._prepared is not None:
            wait([self._prepared])

    def _catalog_and_table(self, identifier: tuple[str, str]) -> tuple[Any, Any]:
        """The prepared catalog (waiting for it if it is still on its way) and the table loaded now;
        without a preparation, or after a failed one, both from scratch."""
        if self._prepared is not None:
            try:
                catalog = self._prepared.result()
            except Exception as exc:
                log.warning("%s: preparing the table failed (%s); trying again", self.table_def.name, exc)
            else:
                return catalog, catalog.load_table(identifier)
        catalog = load_catalog(self.catalog_cfg)
        return catalog, ensure_table(catalog, self.catalog_cfg.namespace, self.table_def, self.parquet)

    def list_parts(self) -> list[str]:
        return [f"{self.table_def.name}-committer"]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: SinkState | None) -> IcebergSinkPartition:
        identifier = (self.catalog_cfg.namespace, self.table_def.name)
        catalog, table = self._catalog_and_table(identifier)
        writer_id = f"{self.flow_id}/{step_id}/{for_part}"
        ledger = self.ledger_factory() if self.ledger_factory else None
        remote = None
        if self._use_process():
            remote = RemoteTable(SinkProcess.shared(), self.catalog_cfg, *identifier)
        return IcebergSinkPartition(
            self.table_def, table, writer_id, resume_state, self.retry,
            reload=lambda: catalog.load_table(identifier), ledger=ledger, remote=remote,
        )  # fmt: skip

    def _use_process(self) -> bool:
        return (self.retry or SinkConfig()).executor == "process"
