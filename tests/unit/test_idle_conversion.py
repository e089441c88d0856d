"""The sink converts its rows in the worker's idle moments (connectors/doorbell.py idle tasks) when the
worker's partitions wait in a doorbell: one piece per idle moment, on the worker thread, never while the
stager converts, not before the rows waited a moment (fast rows go to the stager as before), and the
same rows committed exactly once as with the stager alone."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from connectors import doorbell
from connectors.backpressure import WaitChannel
from connectors.iceberg import sink as sink_module
from connectors.iceberg.sink import IcebergSinkPartition, SinkState
from tests.support.sinks import ids, part, trade

PIECE = sink_module.IDLE_PIECE_ROWS


@pytest.fixture(autouse=True)
def _no_min_age(monkeypatch):
    """Rows may be converted in the first idle moment (the age rule has its own test)."""
    monkeypatch.setattr(sink_module, "IDLE_MIN_AGE_S", 0.0)


class _Partition:
    """Stands for a source partition of the worker: what the bell's `wait` is called from."""


def _worker_bell() -> tuple[doorbell.Doorbell, WaitChannel]:
    """This thread's bell with one (empty) source channel attached, as a polled ShardPartition leaves it."""
    bell = doorbell.for_this_thread()
    channel = WaitChannel("shard-00000", 10)
    bell.attach(channel)
    return bell, channel


def _idle_moment(bell: doorbell.Doorbell) -> None:
    """The worker has nothing queued: a source partition waits (briefly) in the bell."""
    bell.wait(_Partition(), 0.001)


def _converting_threads(p: IcebergSinkPartition) -> list[int]:
    """Record the thread of every conversion of `p` (the stager's or the worker's)."""
    seen: list[int] = []
    convert = p._convert

    def recording(rows):
        seen.append(threading.get_ident())
        return convert(rows)

    p._convert = recording
    return seen


def _seal_and_commit(p: IcebergSinkPartition) -> SinkState:
    state = p.snapshot()
    p.drain()
    return state


def test_rows_wait_for_an_idle_moment_and_convert_on_the_worker_thread(catalog):
    bell, _ = _worker_bell()
    p = part(catalog)
    threads = _converting_threads(p)
    p.write_batch([trade(0, o) for o in range(2 * PIECE + 7)])
    assert p.idle_bell is bell and p.staging is None and not p.converted  # nothing handed to the stager
    _idle_moment(bell)
    assert threads == [threading.get_ident()] and len(p.buffer) == PIECE + 7  # one piece per idle moment
    _idle_moment(bell)
    _idle_moment(bell)  # fewer than a piece left: it waits for more rows or the seal
    assert threads == [threading.get_ident()] * 2 and len(p.buffer) == 7 and bell.idle_slices == 2
    assert _seal_and_commit(p) == SinkState(1, {0: 2 * PIECE + 6})
    assert ids(catalog) == Counter(str(o) for o in range(2 * PIECE + 7))
    p.close()
    assert p not in bell._idle_tasks


def test_no_idle_conversion_while_the_worker_has_queued_items(catalog):
    bell, channel = _worker_bell()
    p = part(catalog)
    threads = _converting_threads(p)
    p.write_batch([trade(0, o) for o in range(PIECE)])
    channel.put("frame")  # a client handed the worker something: it goes back to work instead
    _idle_moment(bell)
    assert threads == [] and len(p.buffer) == PIECE
    p.close()


def test_no_idle_conversion_while_the_stager_converts_an_earlier_piece(catalog):
    bell, _ = _worker_bell()
    p = part(catalog)
    threads = _converting_threads(p)
    gate = threading.Event()
    p.stager.submit(gate.wait, 30)  # the stager is busy (an earlier piece)
    p.write_batch([trade(0, o) for o in range(PIECE)])
    p._hand_over()  # as the backstop would
    p.write_batch([trade(0, o) for o in range(PIECE, 2 * PIECE)])
    _idle_moment(bell)  # both would fill the open chunk at once
    assert len(p.buffer) == PIECE and threads == []
    gate.set()
    p.staging.result(5)
    _idle_moment(bell)
    assert p.buffer == [] and threads[-1] == threading.get_ident()
    assert _seal_and_commit(p) == SinkState(1, {0: 2 * PIECE - 1})
    assert ids(catalog) == Counter(str(o) for o in range(2 * PIECE))
    p.close()


def test_rows_that_arrive_fast_go_to_the_stager_before_they_are_old_enough(catalog, monkeypatch):
    monkeypatch.setattr(sink_module, "IDLE_MIN_AGE_S", 30.0)
    monkeypatch.setattr(sink_module, "CONVERT_EVERY", 3 * PIECE)
    bell, _ = _worker_bell()
    p = part(catalog)
    threads = _converting_threads(p)
    p.write_batch([trade(0, o) for o in range(3 * PIECE - 1)])
    _idle_moment(bell)  # a piece is there, but its rows came just now: a busy worker's rows
    assert p.staging is None and threads == []
    p.write_batch([trade(0, 3 * PIECE - 1)])  # CONVERT_EVERY rows: the stager takes them all
    assert p.staging is not None and p.buffer == []
    p.staging.result(5)
    assert threads and threading.get_ident() not in threads
    assert _seal_and_commit(p) == SinkState(1, {0: 3 * PIECE - 1})
    assert ids(catalog) == Counter(str(o) for o in range(3 * PIECE))
    p.close()


def test_without_partitions_waiting_in_the_bell_the_stager_converts_as_before(catalog, monkeypatch):
    monkeypatch.setattr(sink_module, "CONVERT_EVERY", 4)
    p = part(catalog)  # this thread's bell serves no source partition (poll mode, or a sink-only worker)
    p.write_batch([trade(0, o) for o in range(4)])
    assert p.idle_bell is None and p.staging is not None and p.buffer == []
    p.close()


def test_a_failed_idle_conversion_fails_the_seal_like_a_failed_stager_conversion(catalog):
    bell, _ = _worker_bell()
    p = part(catalog)

    def broken(rows):
        raise ValueError("bad row")

    p._convert = broken
    p.write_batch([trade(0, o) for o in range(PIECE)])
    _idle_moment(bell)  # the failure does not escape into the source partition's poll
    assert len(p.converted) == 1
    with pytest.raises(ValueError, match="bad row"):
        p.snapshot()
