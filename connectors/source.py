"""Bytewax source: one partition per symbol shard, each fed by its exchange clients' threads.

`next_batch` only drains a bounded queue (never touches a socket), assigns each event its position in
the shard's stream (`offset`, resumed from the Bytewax snapshot so it stays monotonic across restarts)
and ends the partition when every client has finished (only in replay mode).
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors.signals import END
from cryptoflow import metrics
from cryptoflow.model import RawEvent
from cryptoflow.sharding import partition_name, shard_of_partition

log = logging.getLogger(__name__)


class Client(Protocol):
    def start(self) -> None: ...
    def stop(self, timeout: float = 5.0) -> None: ...


ClientsFactory = Callable[[int, queue.Queue], list[Client]]


class ShardPartition(StatefulSourcePartition[RawEvent, int]):
    def __init__(
        self,
        name: str,
        clients: list[Client],
        out: queue.Queue,
        next_offset: int,
        batch_size: int,
        idle_ms: int,
    ) -> None:
        self.name, self.clients, self.queue = name, clients, out
        self.next_offset, self.batch_size = next_offset, batch_size
        self.idle = timedelta(milliseconds=idle_ms)
        self.running = len(clients)
        self._awake: datetime | None = None
        for client in clients:
            client.start()

    def next_batch(self) -> list[RawEvent]:
        if self.running == 0:
            raise StopIteration()
        batch: list[RawEvent] = []
        get = self.queue.get_nowait
        offset = self.next_offset
        try:
            while len(batch) < self.batch_size:
                item = get()
                if item is END:
                    self.running -= 1
                    if self.running == 0:
                        break
                    continue
                item.offset = offset
                offset += 1
                batch.append(item)
        except queue.Empty:
            pass
        self.next_offset = offset
        metrics.QUEUE_DEPTH.labels(self.name).set(self.queue.qsize())
        self._awake = None if batch else datetime.now(UTC) + self.idle
        return batch

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self.next_offset

    def close(self) -> None:
        for client in self.clients:
            client.stop()


class ShardedSource(FixedPartitionedSource[RawEvent, int]):
    """Partitions are the shards that own at least one configured symbol (stable, zero-padded names)."""

    def __init__(
        self, shards: list[int], make_clients: ClientsFactory, queue_cap: int, batch_size: int, idle_ms: int
    ):
        self.shards, self.make_clients = shards, make_clients
        self.queue_cap, self.batch_size, self.idle_ms = queue_cap, batch_size, idle_ms

    def list_parts(self) -> list[str]:
        return [partition_name(s) for s in self.shards]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> ShardPartition:
        out: queue.Queue = queue.Queue(maxsize=self.queue_cap)
        shard = shard_of_partition(for_part)
        clients = self.make_clients(shard, out)
        log.info("%s: partition %s starts at offset %s", step_id, for_part, resume_state or 0)
        return ShardPartition(for_part, clients, out, resume_state or 0, self.batch_size, self.idle_ms)
