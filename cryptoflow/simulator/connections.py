"""One frame list from the frames several connections received (a capture of a sharded client).

A replay venue serves one recorded list to every connection, filtered by what each subscribed to. A
capture of several connections holds the frames every connection received, so a frame sent to all of
them (Coinbase heartbeats, a multi-product frame) is there once per connection. `merge_connections`
keeps such a frame once and keeps every connection's own order, so each connection of the replay
receives exactly the sequence its recorded counterpart did (Coinbase numbers what it sends per
connection: the same sequence gives the same `sequence_num`s).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable

from connectors.recordings.records import Record


def merge_connections(records: Iterable[Record], key: Callable[[Record], Hashable]) -> list[Record]:
    """The `recv` records of all connections as one list: a frame every connection got (same `key`, same
    occurrence number within its connection) once; each connection's frames in its own order."""
    by_conn: dict[str | None, list[Record]] = {}
    for record in records:
        if record.kind == "recv":
            by_conn.setdefault(record.conn, []).append(record)
    if len(by_conn) <= 1:
        return next(iter(by_conn.values()), [])
    # a singly linked list (node index -> next index) so inserting after a known frame is O(1)
    items: list[Record | None] = [None]  # 0 = head
    nxt: list[int] = [-1]
    seen: dict[tuple[Hashable, int], int] = {}
    for frames in by_conn.values():
        cursor, occurrences = 0, Counter()
        for record in frames:
            k = key(record)
            occurrences[k] += 1
            ident = (k, occurrences[k])
            node = seen.get(ident)
            if node is None:
                items.append(record)
                nxt.append(nxt[cursor])
                node = nxt[cursor] = len(items) - 1
                seen[ident] = node
            cursor = node
    out: list[Record] = []
    node = nxt[0]
    while node != -1:
        out.append(items[node])  # type: ignore[arg-type]
        node = nxt[node]
    return out
