"""The journal of a subscribe venue decodes into exactly the events the client hands the queue, and a
decoder resumed from its saved state (as a Bytewax snapshot restores it) continues identically."""

from __future__ import annotations

import pickle
import queue
from dataclasses import astuple

from connectors.bybit.client import BybitClient, bybit_decoder_parser
from connectors.journal import JournalReader, JournalWriter, RecordKind
from connectors.signals import END
from connectors.subscribe_client import SubscribeDecoder, decode_events, encode_events
from cryptoflow.config import BybitConfig, ConnectorConfig
from cryptoflow.model import Kind, RawEvent
from cryptoflow.simulator.bybit import BybitVenue

SYMBOLS = {"BTCUSDT": "BTC-USDT", "ETHUSDT": "ETH-USDT", "SOLUSDT": "SOL-USDT", "DOGEUSDT": "DOGE-USDT"}


def _client(category: str, out) -> BybitClient:
    client = BybitClient(BybitConfig(), ConnectorConfig(), category, list(SYMBOLS), {"depth", "trades", "funding"},
                         3, out)  # fmt: skip
    client.symbol_map.update(SYMBOLS)
    client.market_map.update(dict.fromkeys(SYMBOLS, "spot" if category == "spot" else "perp"))
    client._new_parser()
    client._journal_instruments()
    return client


def _feed(client: BybitClient, frames: list[str], lose_connection_at: int) -> None:
    for i, text in enumerate(frames):
        if i == lose_connection_at:  # the connection drops: gaps, then a new connection's parser
            client._connection_lost()
            client._new_parser()
        client._on_frame(text)


def _key(event: RawEvent) -> tuple:
    fields = astuple(event)
    return fields[:6] + fields[7:8] + fields[9:]  # all but ingest time and offset


def test_bybit_journal_decodes_into_the_queue_events_and_resumes_from_saved_state(tmp_path):
    venue = BybitVenue.from_v3()
    linear = [f.text for f in venue.paths["/v5/public/linear"]][:400]
    spot = [f.text for f in venue.paths["/v5/public/spot"]][:200]
    cut = 250  # linear connection lost here

    q: queue.Queue = queue.Queue()
    _feed(_client("linear", q), linear, cut)
    _feed(_client("spot", q), spot, 10_000)
    expected = [q.get() for _ in range(q.qsize())]
    assert END not in expected
    assert {e.kind for e in expected} >= {
        Kind.DEPTH_SNAPSHOT,
        Kind.DEPTH_DIFF,
        Kind.TRADE,
        Kind.CONNECTION_GAP,
    }

    writer = JournalWriter(tmp_path / "shard-00003")
    _feed(_client("linear", writer), linear, cut)
    _feed(_client("spot", writer), spot, 10_000)
    writer.close()
    records = JournalReader(tmp_path / "shard-00003").read(100_000)
    kinds = [r.kind for r in records]
    assert kinds.count(RecordKind.WS_FRAME) == len(linear) + len(spot)
    assert kinds.count(RecordKind.INSTRUMENTS) == 2 and kinds.count(RecordKind.EVENTS) == 1

    def decode(decoder: SubscribeDecoder, part) -> list[RawEvent]:
        out: list[RawEvent] = []
        for record in part:
            out.extend(decoder.decode(record) or [])
        return out

    whole = decode(SubscribeDecoder("bybit", 3, None, bybit_decoder_parser(3)), records)
    assert [_key(e) for e in whole] == [_key(e) for e in expected]

    # resume in the middle of the linear connection's second half, from a pickled snapshot of the state
    middle = next(i for i, r in enumerate(records) if r.kind is RecordKind.EVENTS) + 40
    first = SubscribeDecoder("bybit", 3, None, bybit_decoder_parser(3))
    head = decode(first, records[:middle])
    state = pickle.loads(pickle.dumps(first.state()))
    tail = decode(SubscribeDecoder("bybit", 3, state, bybit_decoder_parser(3)), records[middle:])
    assert [_key(e) for e in head + tail] == [_key(e) for e in whole]


def test_connection_gaps_round_trip_through_their_journal_record():
    gaps = [
        RawEvent(
            "okx", "perp", "UNI-USD", "UNI-USD-SWAP", Kind.CONNECTION_GAP, None, 17, 2, -1, None, seq=99
        ),
        RawEvent("okx", "spot", "BTC-USDT", "BTC-USDT", Kind.CONNECTION_GAP, None, 17, 2, -1, None),
    ]
    assert decode_events("okx", 2, encode_events(gaps)) == gaps
