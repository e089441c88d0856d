"""The sink child's request pipe: a write's IPC streams travel as raw messages after the request, not
inside its pickle (pickling a chunk's ~12 MB held the GIL in one piece), grouped about 1 MB at a time
through a pipe widened to 1 MB where Linux allows; the child gets back exactly the blobs, in order."""

from __future__ import annotations

import os
import random
import threading
from multiprocessing.connection import Connection

import pytest

from connectors.iceberg import remote
from connectors.iceberg.child_ops import receive_request
from connectors.iceberg.remote import GROUP_BYTES, _groups, _request_pipe, send_request


def blobs(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    sizes = [rng.randint(0, 60_000) for _ in range(200)] + [GROUP_BYTES + 5, 3, GROUP_BYTES, 0, 70_000]
    return [rng.randbytes(n) for n in sizes]


def test_groups_keep_order_and_stay_within_the_group_size_unless_one_blob_is_larger():
    sent = blobs(1)
    groups = _groups(sent)
    assert [b for g in groups for b in g] == sent
    assert all(sum(map(len, g)) <= GROUP_BYTES or len(g) == 1 for g in groups)
    assert len(groups) < len(sent) / 10  # grouped, not one message per blob
    assert _groups([]) == []


def round_trip(request: tuple, sent: list[bytes] | None) -> tuple:
    read_end, write_end = _request_pipe()
    reader, writer = Connection(read_end, writable=False), Connection(write_end, readable=False)
    got: list[tuple] = []
    thread = threading.Thread(target=lambda: got.append(receive_request(reader)))
    thread.start()  # the pipe holds 1 MB at most: the reader must drain it while the blobs go in
    send_request(writer, request, sent)
    thread.join(timeout=30)
    writer.close()
    reader.close()
    return got[0]


def test_the_child_receives_the_blobs_first_then_the_request_arguments():
    sent = blobs(2)
    call_id, op, key, args = round_trip((7, "write", "t#0", ([("symbol", "ascending")],)), sent)
    assert (call_id, op, key) == (7, "write", "t#0")
    received, sort_keys = args
    assert [bytes(b) for b in received] == sent
    assert sort_keys == [("symbol", "ascending")]


def test_a_request_without_blobs_keeps_its_arguments():
    assert round_trip((8, "append", "t#0", (["f"], {}, {}, {})), None) == (
        8,
        "append",
        "t#0",
        (["f"], {}, {}, {}),
    )
    assert round_trip((9, "write", "t#0", ([],)), []) == (9, "write", "t#0", ([], []))


@pytest.mark.skipif(not hasattr(remote.fcntl, "F_GETPIPE_SZ"), reason="pipe sizes are a Linux fcntl")
def test_the_request_pipe_is_widened_where_linux_allows():
    read_end, write_end = _request_pipe()
    try:
        size = remote.fcntl.fcntl(write_end, remote.fcntl.F_GETPIPE_SZ)
        with open("/proc/sys/fs/pipe-max-size") as f:
            ceiling = int(f.read())
        # an unprivileged process may not go above the ceiling: the pipe then keeps its size
        assert size == remote.REQUEST_PIPE_BYTES or (
            os.geteuid() != 0 and ceiling < remote.REQUEST_PIPE_BYTES
        )
    finally:
        os.close(read_end)
        os.close(write_end)


def test_ipc_streams_split_out_of_a_group_read_as_the_rows_sent():
    import pyarrow as pa

    from connectors.iceberg.staging import from_ipc, to_ipc

    pieces = [pa.table({"seq": pa.array(range(i * 100, i * 100 + 100), pa.int64())}) for i in range(30)]
    sent = [to_ipc(piece) for piece in pieces]
    assert len(_groups(sent)) == 1  # all in one message: the child reads views into it
    _, _, _, (received, _) = round_trip((1, "write", "t#0", ([("seq", "ascending")],)), sent)
    assert all(isinstance(blob, memoryview) for blob in received)
    assert from_ipc(received).equals(pa.concat_tables(pieces))
