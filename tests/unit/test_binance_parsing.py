import orjson
import pytest

from connectors.binance.parsing import (
    GuessingInstruments,
    Instrument,
    ParseError,
    parse_depth_snapshot,
    parse_exchange_info,
    parse_ws_frame,
    parse_ws_frames,
)
from cryptoflow.model import BUY, SELL, Kind
from tests.support.binance_reference import parse_frame_by_frame

INSTRUMENTS = {"NKNUSDT": Instrument("NKNUSDT", "NKN-USDT", "NKN", "USDT", "spot")}
DIFF = (
    '{"stream":"nknusdt@depth@100ms","data":{"e":"depthUpdate","E":1633998512068,"s":"NKNUSDT",'
    '"U":499869750,"u":499869752,"b":[["0.35130000","6195.00000000"]],"a":[]}}'
)


def test_depth_diff():
    ev = parse_ws_frame(DIFF, INSTRUMENTS, shard=3, ingest_us=7)
    assert ev.kind is Kind.DEPTH_DIFF and ev.symbol == "NKN-USDT" and ev.key == "binance|NKN-USDT"
    assert (ev.first_seq, ev.seq, ev.prev_seq) == (499869750, 499869752, None)
    assert ev.exchange_ts_us == 1633998512068000 and ev.ingest_ts_us == 7 and ev.shard == 3
    assert ev.payload == ([["0.35130000", "6195.00000000"]], [])


@pytest.mark.parametrize(("maker", "side"), [(True, SELL), (False, BUY)])
def test_agg_trade_taker_side(maker, side):
    frame = (
        '{"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"NKNUSDT","a":15683430,'
        f'"p":"0.35280000","q":"58.00000000","f":1,"l":2,"T":1633998523963,"m":{str(maker).lower()},"M":true}}}}'
    )
    ev = parse_ws_frame(frame, INSTRUMENTS, 0, 0)
    assert ev.kind is Kind.TRADE and ev.payload == ("15683430", "0.35280000", "58.00000000", side)
    assert ev.exchange_ts_us == 1633998523963000


def test_control_and_ignored_messages_parse_to_none():
    assert parse_ws_frame('{"result":null,"id":1}', INSTRUMENTS, 0, 0) is None
    kline = '{"stream":"nknusdt@kline_1m","data":{"e":"kline","E":1,"s":"NKNUSDT","k":{}}}'
    assert parse_ws_frame(kline, INSTRUMENTS, 0, 0) is None


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "malformed_json"),
        ("[1,2]", "unexpected_shape"),
        (DIFF.replace("NKNUSDT", "XYZUSDT"), "unknown_symbol"),
        ('{"stream":"x","data":{"e":"depthUpdate","s":"NKNUSDT"}}', "missing_field"),
        ('{"stream":"x","data":{"e":"somethingNew"}}', "unknown_event"),
        ('{"code":-1121,"msg":"Invalid symbol."}', "server_error"),
    ],
)
def test_bad_frames_raise_a_labelled_parse_error(frame, reason):
    with pytest.raises(ParseError) as err:
        parse_ws_frame(frame, INSTRUMENTS, 0, 0)
    assert err.value.reason == reason


def test_snapshot_and_exchange_info():
    snap = parse_depth_snapshot(
        '{"lastUpdateId":5,"bids":[["1.0","2"]],"asks":[]}', INSTRUMENTS["NKNUSDT"], 1, 9
    )
    assert snap.kind is Kind.DEPTH_SNAPSHOT and snap.seq == 5 and snap.exchange_ts_us is None
    with pytest.raises(ParseError):
        parse_depth_snapshot('{"code":-1121}', INSTRUMENTS["NKNUSDT"], 1, 9)
    info = parse_exchange_info(
        '{"symbols":[{"symbol":"LRCBTC","baseAsset":"LRC","quoteAsset":"BTC"}]}', "spot"
    )
    assert info["LRCBTC"].symbol == "LRC-BTC"


def _depth(**fields) -> str:
    data = {"e": "depthUpdate", "E": 1633998512068, "s": "NKNUSDT", "U": 10, "u": 12,
            "b": [["0.35130000", "6195.00000000"]], "a": [["0.36", "1.0"], ["0.37", "0"]]}  # fmt: skip
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not ...}
    return orjson.dumps({"stream": "nknusdt@depth@100ms", "data": data}).decode()


def test_batch_parser_matches_the_frame_parser_on_every_shape():
    """The lean batch path (depth fast path + fallback) gives exactly the events and errors of
    `parse_ws_frame` frame by frame, including the odd shapes the fast path must hand over."""
    frames = [
        DIFF, DIFF.encode(), _depth(), _depth(pu=9), _depth(pu=None), _depth(U="10", u="12"),
        _depth(E="1633998512068"), _depth(E=True), _depth(E=...), _depth(b=...), _depth(s="XYZUSDT"),
        _depth(U=1.5), '{"e":"depthUpdate","E":1,"s":"NKNUSDT","U":1,"u":2,"b":[],"a":[]}',
        '{"result":null,"id":1}', "{not json", "[1,2]", '{"code":-1121,"msg":"Invalid symbol."}',
        '{"stream":"nknusdt@kline_1m","data":{"e":"kline","E":1,"s":"NKNUSDT","k":{}}}',
        '{"stream":"x","data":{"e":"somethingNew"}}', '{"stream":"x","data":[1]}', '"text"',
        '{"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"NKNUSDT","a":15683430,'
        '"p":"0.35280000","q":"58.00000000","f":1,"l":2,"T":1633998523963,"m":true,"M":true}}',
    ]  # fmt: skip
    errors = []
    events, kept = parse_ws_frames(
        frames, INSTRUMENTS, 5, 99, lambda raw, exc: errors.append((raw, exc.reason))
    )
    want_events, want_kept, want_errors = parse_frame_by_frame(frames, INSTRUMENTS, 99)
    assert events == want_events and kept == want_kept and errors == want_errors
    assert len(events) == 10 and {reason for _, reason in errors} == {
        "malformed_json", "missing_field", "unknown_symbol", "unexpected_shape", "server_error", "unknown_event"
    }  # fmt: skip
    assert (
        events[3].prev_seq == 9 and events[4].first_seq == 10 and events[5].exchange_ts_us == 1633998512068000
    )


def test_batch_parser_matches_the_frame_parser_on_the_recordings():
    from benchmarks.corpus import load_binance

    for venue in ("binance-spot", "binance-usdm"):
        corpus = load_binance(venue, 1)
        frames = [item for kind, item in corpus.schedule if kind == "ws"]
        instruments = GuessingInstruments(corpus.market)
        events, kept = parse_ws_frames(frames, instruments, 5, 99, lambda raw, exc: None)
        want_events, want_kept, _ = parse_frame_by_frame(frames, instruments, 99)
        assert len(events) > 100 and events == want_events and kept == want_kept


ODD_DEPTH_FRAMES = [
    _depth(pu=None), _depth(U="10"), _depth(E=1.0), _depth(u=True), _depth(E=...), _depth(b=...),
    _depth(s="XYZUSDT"), _depth(U=10).replace(":10,", ":1180591620717411303424,"), _depth(e="depthUpdateX"), "{not json", '{"result":null,"id":1}',
    '{"e":"depthUpdate","E":1,"s":"NKNUSDT","U":1,"u":2,"b":[],"a":[]}', '"text"', "[1,2]", "",
    '{"stream":"x","data":{"e":"depthUpdate"', '"s":"NKNUSDT"}}', '{"a":1},{"data":{}}', " " + _depth(),
]  # fmt: skip


@pytest.mark.parametrize("odd", ODD_DEPTH_FRAMES)
@pytest.mark.parametrize("position", [0, 3, 7])
@pytest.mark.parametrize("as_bytes", [False, True])
def test_typed_batch_decode_equals_the_frame_parser_with_an_odd_frame_anywhere(odd, position, as_bytes):
    """A read of depth frames (the batch decode) with one odd frame at `position`: events, kept frames
    and errors are exactly `parse_ws_frame`'s, frame by frame."""
    frames = [_depth(U=10 + 3 * i, u=12 + 3 * i, pu=9 + 3 * i) for i in range(8)]
    frames.insert(position, odd)
    if as_bytes:
        frames = [f.encode() for f in frames]
    errors = []
    events, kept = parse_ws_frames(
        frames, INSTRUMENTS, 5, 99, lambda raw, exc: errors.append((raw, exc.reason))
    )
    want_events, want_kept, want_errors = parse_frame_by_frame(frames, INSTRUMENTS, 99)
    assert events == want_events and kept == want_kept and errors == want_errors
    assert len(events) >= 8


def test_a_read_of_depth_frames_takes_the_typed_batch_decode(monkeypatch):
    """The hot case must not silently fall back: the per-frame path is not called, the events are."""
    import connectors.binance.parsing as parsing

    frames = [_depth(U=10 + 3 * i, u=12 + 3 * i, pu=9 + 3 * i) for i in range(5)] + [_depth(pu=...)]
    want, want_kept, _ = parse_frame_by_frame(frames, INSTRUMENTS, 99)
    monkeypatch.setattr(parsing, "_parse_frames_one_by_one", None)  # calling it would raise
    events, kept = parse_ws_frames(frames, INSTRUMENTS, 5, 99, lambda raw, exc: None)
    assert events == want and kept == want_kept == frames
    assert [e.prev_seq for e in events] == [9, 12, 15, 18, 21, None]
