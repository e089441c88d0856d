"""Bytewax source: one partition per symbol shard, each fed by its exchange clients' threads.

Two paths. Without a journal, `next_batch` only drains a bounded queue (never touches a socket),
assigns each event its position in the shard's stream (`offset`: monotonic, and never reused by a
later run, see `build_part`) and ends the partition when every client has finished (only in replay
mode); a crash loses what was in flight. With a journal, clients append what arrived to the
shard's journal, which assigns the offsets; the partition reads the journal from its resumed offset
and decodes after it, so a replay produces identical events and offsets (exactly-once with the sink).
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors import doorbell
from connectors.backpressure import Channel, ChannelSpec, open_channel
from connectors.journal import JournalReader, JournalRecord, JournalWriter, RecordKind
from connectors.signals import END, RUN_ID
from cryptoflow import metrics
from cryptoflow.config import JournalConfig
from cryptoflow.level_block import DepthRead
from cryptoflow.model import RawEvent
from cryptoflow.sharding import partition_name, shard_of_partition

log = logging.getLogger(__name__)


class Client(Protocol):
    def start(self) -> None: ...
    def stop(self, timeout: float = 5.0) -> None: ...


ClientsFactory = Callable[[int, Any], list[Client]]  # (shard, Channel | JournalWriter)


class Decoder(Protocol):
    """Turns journal records into events; its state (e.g. instruments) is part of the source snapshot.
    A record may decode into several events (a Bybit trade frame): they share the record's offset, and
    arrive in one batch, so the exactly-once sink commits them together."""

    def decode(self, record: JournalRecord) -> RawEvent | list[RawEvent] | None: ...
    def state(self) -> Any: ...


DecoderFactory = Callable[[int, Any], Decoder]  # (shard, saved decoder state or None)


@dataclass
class JournalPosition:
    """Source resume state in journal mode: the next journal offset and the decoder's state there."""

    offset: int
    decoder: Any


class ShardPartition(StatefulSourcePartition[RawEvent, int]):
    def __init__(
        self,
        name: str,
        clients: list[Client],
        out: Channel | queue.Queue,
        next_offset: int,
        batch_size: int,
        idle_ms: int,
        wake_on_data: bool = True,
    ) -> None:
        self.name, self.clients, self.queue = name, clients, out
        self.next_offset, self.batch_size = next_offset, batch_size
        self.idle = timedelta(milliseconds=idle_ms)
        self.idle_s = idle_ms / 1000
        self.running = len(clients)
        self._awake: datetime | None = None
        # `connector.wake_on_data`: an empty partition sleeps in its worker's doorbell (woken by the
        # clients' hand-over) instead of asking Bytewax to poll it again `idle_ms` later
        self.wake_on_data = wake_on_data and hasattr(type(out), "doorbell")  # our channels ring it
        self._bell: doorbell.Doorbell | None = None
        self._depth = metrics.QUEUE_DEPTH.labels(name)
        self._depth_shown = -1
        for client in clients:
            client.start()

    def next_batch(self) -> list[RawEvent]:
        if self.running == 0:
            self._leave_bell()
            raise StopIteration()
        bell = self._bell
        if bell is None and self.wake_on_data:  # the polling worker's thread, known only now
            bell = self._bell = doorbell.for_this_thread()
            bell.attach(self.queue)
            for client in self.clients:  # `connector.client_loop: worker`: run their loop while idle
                bell.driver = getattr(client, "loop_driver", None) or bell.driver
        items = self._take()
        if not items and bell is not None:
            bell.wait(self, self.idle_s)
            items = self._take()
        batch: list[RawEvent] = []
        offset, extra = self.next_offset, 0
        for item in items:
            if item is END:
                self.running -= 1
                if self.running == 0:
                    break
                continue
            if item.__class__ is DepthRead:  # one read of several frames: one offset per frame
                item.place(offset)
                offset += item.span
                extra += item.span - 1
            else:
                item.offset = offset
                offset += 1
            batch.append(item)
        self.next_offset = offset
        if extra:  # the reads were put with their frames as weight (`HandoffQueue.put_weighted`)
            self.queue.release(extra)
        depth = self.queue.qsize()
        if depth != self._depth_shown:  # a gauge set takes a lock: not on every (mostly empty) poll
            self._depth.set(depth)
            self._depth_shown = depth
        if batch:
            self._awake = None
            if bell is not None:
                bell.emitted(self)
        elif bell is not None:  # it slept in the bell already: poll again at once
            self._awake = datetime.now(UTC)
        else:
            self._awake = datetime.now(UTC) + self.idle
        return batch

    def _leave_bell(self) -> None:
        if self._bell is not None:
            self._bell.detach(self.queue, self)
            self._bell = None

    def _take(self) -> list[Any]:
        """Up to `batch_size` queued items: one `drain` call on our channels, else one by one."""
        drain = getattr(self.queue, "drain", None)
        return drain(self.batch_size) if drain is not None else self._get_all()

    def _get_all(self) -> list[Any]:
        """Up to `batch_size` items from a plain `queue.Queue` (clients given one by a caller)."""
        items: list[Any] = []
        get = self.queue.get_nowait
        try:
            while len(items) < self.batch_size:
                items.append(get())
        except queue.Empty:
            pass
        return items

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self.next_offset

    def close(self) -> None:
        self._leave_bell()
        for client in self.clients:
            client.stop()


class JournalShardPartition(StatefulSourcePartition[RawEvent, JournalPosition]):
    """Reads a shard's journal from the resumed offset while its clients (if any) append to it.

    Journal segments below the offset of the second-to-last snapshot are deleted: by then Bytewax has
    durably recorded a later resume point, and every sink committed that epoch before its snapshot.
    """

    def __init__(
        self,
        name: str,
        reader: JournalReader,
        decoder: Decoder,
        clients: list[Client],
        writer: JournalWriter | None,
        batch_size: int,
        idle_ms: int,
        retention_s: float,
    ) -> None:
        self.name, self.reader, self.decoder = name, reader, decoder
        self.clients, self.writer = clients, writer
        self.batch_size, self.idle = batch_size, timedelta(milliseconds=idle_ms)
        self.retention_s = retention_s
        self.ended = 0
        self._awake: datetime | None = None
        self._snapshots: list[int] = []
        for client in clients:
            client.start()

    def next_batch(self) -> list[RawEvent]:
        records = self.reader.read(self.batch_size)
        if not records:
            # replay of a capture: the journal's end is the end; live: every client of this run ended
            if not self.clients or self.ended >= len(self.clients):
                raise StopIteration()
            self._awake = datetime.now(UTC) + self.idle
            return []
        batch: list[RawEvent] = []
        decode = self.decoder.decode
        for record in records:
            if record.kind is RecordKind.END:
                if record.meta == RUN_ID:
                    self.ended += 1
                continue
            event = decode(record)
            if event is None:
                continue
            if type(event) is list:  # a frame of several events: they share the record's offset
                for each in event:
                    each.offset = record.offset
                batch.extend(event)
            else:
                event.offset = record.offset
                batch.append(event)
        self._awake = None
        return batch

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> JournalPosition:
        position = JournalPosition(self.reader.next_offset, self.decoder.state())
        self._snapshots.append(position.offset)
        if len(self._snapshots) > 2:
            durable = self._snapshots.pop(0)
            if self.writer is not None:
                self.writer.delete_below(durable, self.retention_s)
        return position

    def close(self) -> None:
        for client in self.clients:
            client.stop()
        if self.writer is not None:
            self.writer.close()
        self.reader.close()


def journal_dir(cfg: JournalConfig, stream: str, part: str, source: str = "") -> tuple[Path, bool]:
    """The partition's journal directory and whether it is a capture to replay (no clients).

    `source` (e.g. `binance_usdm`) keeps the journals of a flow's sources apart: two sources of one flow
    (ticks from spot and USD-M) both have a `shard-00000`. A capture has the same `<source>/<part>` layout.
    """
    if cfg.replay_dir:
        return Path(cfg.replay_dir) / source / part, True
    return Path(cfg.dir) / stream / source / part, False


def replay_has_source(cfg: JournalConfig, source: str) -> bool:
    """Whether the configured capture holds `source` (always True when not replaying a capture)."""
    return not cfg.enabled or not cfg.replay_dir or (Path(cfg.replay_dir) / source).is_dir()


class ShardedSource(FixedPartitionedSource[RawEvent, Any]):
    """Partitions are the shards that own at least one configured symbol (stable, zero-padded names)."""

    def __init__(
        self,
        shards: list[int],
        make_clients: ClientsFactory,
        queue_cap: int | ChannelSpec,
        batch_size: int,
        idle_ms: int,
        journal: JournalConfig | None = None,
        make_decoder: DecoderFactory | None = None,
        stream: str = "",
        source: str = "",
        wake_on_data: bool = True,
    ):
        self.shards, self.make_clients = shards, make_clients
        self.wake_on_data = wake_on_data
        self.queue_cap, self.batch_size, self.idle_ms = queue_cap, batch_size, idle_ms
        self.journal, self.make_decoder, self.stream = journal, make_decoder, stream
        self.source = source
        if journal is not None and journal.enabled and make_decoder is None:
            raise ValueError("a journaled source needs a decoder")

    def list_parts(self) -> list[str]:
        return [partition_name(s) for s in self.shards]

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> Any:
        if self.journal is not None and self.journal.enabled:
            return self._build_journal_part(step_id, for_part, resume_state)
        label = "/".join(p for p in (self.stream, self.source, for_part) if p)
        out = open_channel(self.queue_cap, label)  # caps and backpressure policy from `channels`
        shard = shard_of_partition(for_part)
        clients = self.make_clients(shard, out)
        # Live input is not replayable here: a restarted run reads *new* data, which must never reuse an
        # offset a previous run may have committed (the sink drops rows at or below its watermark).
        # Offsets therefore start at the wall clock in microseconds, past any earlier run's offsets.
        start = max(resume_state or 0, time.time_ns() // 1000)
        log.info("%s: partition %s starts at offset %s", step_id, for_part, start)
        return ShardPartition(for_part, clients, out, start, self.batch_size, self.idle_ms, self.wake_on_data)

    def _build_journal_part(
        self, step_id: str, for_part: str, resume: JournalPosition | None
    ) -> JournalShardPartition:
        assert self.journal is not None and self.make_decoder is not None
        shard = shard_of_partition(for_part)
        label = "/".join(p for p in (self.stream, self.source) if p)
        directory, replay = journal_dir(self.journal, self.stream, for_part, self.source)
        if isinstance(resume, int):  # state saved by the queue path: not a journal position
            raise RuntimeError(
                f"{for_part}: the recovery store was written without the journal; use a new recovery dir"
            )
        writer, clients = None, []
        if replay:
            if not directory.is_dir():
                raise FileNotFoundError(f"journal.replay_dir has no {for_part}: {directory}")
            start = resume.offset if resume else None
        else:
            writer = JournalWriter(
                directory, self.journal.fsync, self.journal.fsync_interval_ms,
                self.journal.segment_mb * 1024 * 1024, name=f"{label}/{for_part}",
            )  # fmt: skip
            # No resume state: a first run, or a run that died before Bytewax stored its first
            # snapshot. Either way read from the oldest retained record (the sink drops what is
            # already committed); starting at the end would skip what the dead run journaled.
            start = resume.offset if resume else None
        reader = JournalReader(directory, start, name=f"{label}/{for_part}")
        decoder = self.make_decoder(shard, resume.decoder if resume else None)
        if writer is not None:
            clients = self.make_clients(shard, writer)
        log.info(
            "%s: partition %s reads journal %s from offset %s%s",
            step_id, for_part, directory, reader.next_offset, " (replay)" if replay else "",
        )  # fmt: skip
        return JournalShardPartition(
            for_part, reader, decoder, clients, writer, self.batch_size, self.idle_ms,
            self.journal.retention_s,
        )  # fmt: skip
