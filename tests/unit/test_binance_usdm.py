"""USD-M parsing (forceOrder, markPriceUpdate, exchangeInfo contract types), connection planning
(URL split, 1024-stream lanes, SUBSCRIBE chunks, pacing), the hand-over filter, config limits."""

import asyncio
import json

import pytest

from connectors.binance.client import (
    CHANNEL_BOOK_TICKER,
    CHANNEL_DEPTH,
    CHANNEL_FUNDING,
    CHANNEL_LIQUIDATIONS,
    CHANNEL_TRADES,
    SPOT,
    USDM,
    BinanceClient,
    DuplicateFilter,
    Lane,
    _LaneHandover,
    endpoint_of,
    plan_lanes,
    subscribe_messages,
)
from connectors.binance.parsing import Instrument, ParseError, parse_exchange_info, parse_ws_frame
from connectors.ws_client import Pacer
from cryptoflow import paths
from cryptoflow.config import ConfigError, Settings, load_settings
from cryptoflow.model import LONG, SHORT, Funding, Kind, Liquidation, RawEvent

INSTRUMENTS = {"BTCUSDT": Instrument("BTCUSDT", "BTC-USDT", "BTC", "USDT", "perp")}


def force_order(side: str, event_ms: int = 1568014460893) -> str:
    return json.dumps({"stream": "btcusdt@forceOrder", "data": {"e": "forceOrder", "E": event_ms, "o": {
        "s": "BTCUSDT", "S": side, "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "9910", "ap": "9910.50",
        "X": "FILLED", "l": "0.014", "z": "0.014", "T": 1568014460800}}})  # fmt: skip


@pytest.mark.parametrize(("order_side", "position"), [("SELL", LONG), ("BUY", SHORT)])
def test_force_order_side_is_the_liquidated_positions_side(order_side, position):
    ev = parse_ws_frame(force_order(order_side), INSTRUMENTS, shard=1, ingest_us=5)
    assert ev.kind is Kind.LIQUIDATION and ev.key == "binance|BTC-USDT-PERP"
    assert ev.payload == Liquidation(position, "9910", "0.014", "9910.50", "0.014", "FILLED")
    assert ev.exchange_ts_us == 1568014460800_000 and ev.seq == 1568014460893


def test_force_order_with_unknown_side_is_a_counted_parse_error():
    with pytest.raises(ParseError) as err:
        parse_ws_frame(force_order("SIDEWAYS"), INSTRUMENTS, 0, 0)
    assert err.value.reason == "missing_field"


def test_mark_price_update_is_funding():
    frame = json.dumps({"stream": "btcusdt@markPrice@1s", "data": {"e": "markPriceUpdate", "E": 1562305380000,
        "s": "BTCUSDT", "p": "11794.15000000", "i": "11784.62659091", "P": "11784.25641265",
        "r": "0.00038167", "T": 1562306400000}})  # fmt: skip
    ev = parse_ws_frame(frame, INSTRUMENTS, 0, 0)
    assert ev.kind is Kind.FUNDING and ev.seq == 1562305380000
    assert ev.payload == Funding("0.00038167", 1562306400000_000, "11794.15000000", "11784.62659091",
                                 "11784.25641265")  # fmt: skip


def test_raw_stream_frames_and_server_shutdown():
    raw = json.loads(force_order("SELL"))["data"]  # `/ws` connections send the payload unwrapped
    assert parse_ws_frame(json.dumps(raw), INSTRUMENTS, 0, 0).kind is Kind.LIQUIDATION
    assert parse_ws_frame('{"e":"serverShutdown","E":1}', INSTRUMENTS, 0, 0) is None


def test_exchange_info_market_from_contract_type():
    instruments = parse_exchange_info(paths.BINANCE_USDM_INSTRUMENTS.read_bytes(), "perp")
    assert instruments["SUSHIUSDT"].market == "perp" and instruments["SUSHIUSDT"].symbol == "SUSHI-USDT"
    dated = instruments["BTCUSDT_210924"]
    assert (dated.market, dated.symbol, dated.base, dated.quote) == ("future", "BTC-USDT", "BTC", "USDT")
    with pytest.raises(ParseError):
        parse_exchange_info(b'{"symbols": [{"symbol": "X"}]}', "perp")


def test_usdm_url_split():
    assert endpoint_of("btcusdt@depth@100ms", USDM) == "/public/stream"
    assert endpoint_of("btcusdt@bookTicker", USDM) == "/public/stream"
    for stream in ("btcusdt@aggTrade", "btcusdt@markPrice@1s", "btcusdt@forceOrder"):
        assert endpoint_of(stream, USDM) == "/market/stream"
        assert endpoint_of(stream, USDM, "legacy") == "/stream"
    assert endpoint_of("btcusdt@depth@100ms", SPOT) == "/stream"


def test_lanes_split_at_the_per_connection_stream_cap():
    streams = [f"s{i}usdt@{kind}" for i in range(700) for kind in ("depth@100ms", "aggTrade")]
    lanes = plan_lanes(streams, USDM, 1024)
    assert [(lane.path, len(lane.streams)) for lane in lanes] == [
        ("/public/stream", 700),
        ("/market/stream", 700),
    ]
    spot = plan_lanes(streams, SPOT, 1024)
    assert [len(lane.streams) for lane in spot] == [1024, 376]
    assert [s for lane in spot for s in lane.streams] == streams  # every stream once, order kept
    three = [f"s{i}usdt@{kind}" for i in range(500) for kind in ("depth@100ms", "bookTicker", "aggTrade")]
    lanes = plan_lanes(three, SPOT, 1024)
    assert [len(lane.streams) for lane in lanes] == [1023, 477]  # 341 whole symbols, then the rest
    symbols = [{s.split("@")[0] for s in lane.streams} for lane in lanes]
    assert not symbols[0] & symbols[1]  # no symbol straddles two connections


def test_client_streams_per_channel(tmp_path):
    cfg = Settings().exchanges.binance.usdm
    channels = {CHANNEL_DEPTH, CHANNEL_BOOK_TICKER, CHANNEL_TRADES, CHANNEL_FUNDING, CHANNEL_LIQUIDATIONS}
    client = BinanceClient(USDM, cfg, Settings().connector, ["BTCUSDT"], channels, 0, None)  # type: ignore[arg-type]
    assert client.lanes() == [
        Lane("/public/stream", ("btcusdt@depth@100ms", "btcusdt@bookTicker")),
        Lane("/market/stream", ("btcusdt@aggTrade", "btcusdt@markPrice@1s", "btcusdt@forceOrder")),
    ]


def test_subscribe_messages_are_chunked_with_distinct_ids():
    msgs = [json.loads(m) for m in subscribe_messages(tuple(f"s{i}@aggTrade" for i in range(450)), 200)]
    assert [len(m["params"]) for m in msgs] == [200, 200, 50]
    assert [m["id"] for m in msgs] == [1, 2, 3] and {m["method"] for m in msgs} == {"SUBSCRIBE"}


def test_pacer_keeps_below_the_rate():
    now = [100.0]
    pacer = Pacer(5, clock=lambda: now[0])
    delays = [pacer.delay() for _ in range(6)]
    assert delays == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    now[0] += 10  # idle: no debt carried over
    assert pacer.delay() == 0


def diff(u: int, pu: int) -> RawEvent:
    return RawEvent("binance", "perp", "BTC-USDT", "BTCUSDT", Kind.DEPTH_DIFF, u, 0, 0, -1, ([], []),
                    first_seq=u, seq=u, prev_seq=pu)  # fmt: skip


class StubClient:
    def __init__(self) -> None:
        self.filter, self.emitted = DuplicateFilter(), []

    def parse_many(self, raws):
        return list(raws), list(raws)  # frames are events already

    def _on_frames(self, raws):  # the primary connection's reads (the real client may take them as columns)
        self.emit_many(*self.parse_many(raws))

    def emit_many(self, events, raws):
        self.emitted.extend(
            ev.seq for ev, fresh in zip(events, self.filter.fresh_many(events), strict=True) if fresh
        )


def test_handover_emits_every_update_once_and_waits_for_the_overlap():
    client = StubClient()
    lane = _LaneHandover(client, "t")  # type: ignore[arg-type]
    for u in (1, 2, 3):
        lane.on_frame(diff(u, u - 1), primary=True)
    for u in (5, 6):  # the replacement joined at 5; 4 is still in flight on the old connection
        lane.on_frame(diff(u, u - 1), primary=False)
    assert not lane.overlap_done()
    for u in (4, 5):
        lane.on_frame(diff(u, u - 1), primary=True)
    assert lane.overlap_done()
    lane.promote()
    lane.on_frame(diff(7, 6), primary=True)
    assert client.emitted == [1, 2, 3, 4, 5, 6, 7]
    assert client.filter.dropped == 1  # the replacement's copy of 5


def test_handover_in_batches_emits_every_update_once():
    """The same hand-over when the sockets deliver several frames per read (one batch per read)."""
    client = StubClient()
    lane = _LaneHandover(client, "t")  # type: ignore[arg-type]
    lane.on_frames([diff(u, u - 1) for u in (1, 2, 3)], primary=True)
    lane.on_frames([diff(u, u - 1) for u in (5, 6)], primary=False)
    assert not lane.overlap_done()
    lane.on_frames([diff(4, 3), diff(5, 4), diff(5, 4)], primary=True)  # a repeat inside one batch too
    assert lane.overlap_done()
    lane.promote()
    lane.on_frames([diff(6, 5), diff(7, 6)], primary=True)
    assert client.emitted == [1, 2, 3, 4, 5, 6, 7]
    assert client.filter.dropped == 3  # the batch's repeat of 5, the replacement's 5, the primary's 6


def test_server_shutdown_asks_for_rotation():
    lane = _LaneHandover(StubClient(), "t")  # type: ignore[arg-type]
    assert lane.wants_rotation(b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}')
    assert not lane.wants_rotation('{"stream":"btcusdt@aggTrade","data":{}}')


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("SNAPSHOT_LIMIT", "2000", "snapshot_limit"),
        ("ROTATE_AFTER_S", "90000", "rotate_after_s"),
        ("MAX_MESSAGES_PER_S", "11", "max_messages_per_s"),
        ("MAX_STREAMS_PER_CONNECTION", "2000", "max_streams_per_connection"),
    ],
)
def test_usdm_limits_are_validated(name, value, field):
    with pytest.raises(ConfigError, match=f"exchanges.binance.usdm.{field}"):
        load_settings(environ={f"CRYPTOFLOW_EXCHANGES__BINANCE__USDM__{name}": value})


def test_usdm_url_must_be_websocket_or_http():
    with pytest.raises(ConfigError, match="ws_url"):
        load_settings(environ={"CRYPTOFLOW_EXCHANGES__BINANCE__USDM__WS_URL": "ftp://x"})


def test_journal_mode_journals_each_emitted_frame_once_and_decodes_to_the_same_events(tmp_path):
    """Journal mode: `emit` writes the raw frame instead of queueing the event, after the hand-over's
    duplicate filter; the decoder after the journal, given the journaled exchangeInfo, yields the
    events the queue path would have carried (kind, symbol, ids, payload), a repeat never."""
    from connectors.binance.decode import BinanceDecoder
    from connectors.journal import JournalReader, JournalWriter, RecordKind

    cfg = Settings().exchanges.binance.usdm
    writer = JournalWriter(tmp_path / "j", "never", 1000, 1 << 20)
    client = BinanceClient(USDM, cfg, Settings().connector, ["BTCUSDT"], {CHANNEL_FUNDING}, 0, writer)
    info = json.dumps({"symbols": [{"symbol": "BTCUSDT", "baseAsset": "BTC", "quoteAsset": "USDT",
                                    "contractType": "PERPETUAL", "status": "TRADING"}]}).encode()  # fmt: skip
    client._adopt_instruments(client._parse_instruments(info))
    client._journal_instruments(info)

    def mark(event_ms: int) -> str:
        data = {"e": "markPriceUpdate", "E": event_ms, "s": "BTCUSDT", "p": "1.5", "i": "1.4", "P": "1.45",
                "r": "0.0001", "T": 1562306400000}  # fmt: skip
        return json.dumps({"stream": "btcusdt@markPrice@1s", "data": data})

    frames = [mark(e) for e in (1000, 2000, 2000, 3000)]  # the third repeats the second (overlap)
    emitted = []
    for raw in frames:
        event = client.parse(raw)
        assert event is not None
        if not client.filter.seen(event):
            emitted.append(event)
        client.emit(event, raw)
    writer.close()
    records = JournalReader(tmp_path / "j").read(100)
    assert [r.kind for r in records] == [RecordKind.INSTRUMENTS] + [RecordKind.WS_FRAME] * 3
    decoder = BinanceDecoder(0, None, USDM, ["BTCUSDT"])
    decoded = [ev for ev in (decoder.decode(r) for r in records) if ev is not None]
    assert decoded == emitted  # every field, payload and ingest time included (offsets unset in both)
    assert [e.seq for e in decoded] == [1000, 2000, 3000] and decoded[0].market == "perp"
    assert set(decoder.state()) == {"BTCUSDT"}


def test_reconnects_keep_only_each_lanes_current_connection():
    """Issue #6: every reconnect appended its RotatingConnection to a list nobody read, so a chaos run
    held hundreds of dead connections (socket buffers, handover, tasks) for the life of the process."""
    cfg = Settings().exchanges.binance.usdm
    channels = {CHANNEL_DEPTH, CHANNEL_TRADES}
    client = BinanceClient(USDM, cfg, Settings().connector, ["BTCUSDT"], channels, 0, None)  # type: ignore[arg-type]
    made: list[object] = []

    def connection(*args, **kwargs):
        made.append(object())
        return made[-1]

    async def keep_connected(name, connect, *args, **kwargs):
        for _ in range(5):  # the first connect and four reconnects after losses
            await connect(None)

    client._connection = connection  # type: ignore[method-assign]
    client._keep_connected = keep_connected  # type: ignore[method-assign]

    async def run() -> None:
        for i, lane in enumerate(client.lanes()):
            await client._lane_loop(i, lane)

    asyncio.run(run())
    lanes = len(client.lanes())
    assert len(made) == 5 * lanes
    assert sorted(map(id, client.lane_connections.values())) == sorted(id(c) for c in made[4::5])
