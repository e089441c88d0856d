"""The compiled Binance read decoder (connectors/binance/_depth.c) against the per-frame reference parser
(`parse_ws_frame`): the same events on the recordings and on adversarial reads, "not handled" (None) for
anything outside its strict shape, and the delta rows built from its level blocks equal to the ones built
from nested lists. The project's install builds the extension, so a missing build fails here; set
CRYPTOFLOW_PURE_PYTHON_PARSE=1 on a machine without a C compiler to skip these on purpose."""

from __future__ import annotations

import os
import pickle
import random
from dataclasses import replace

import orjson
import pytest

import connectors.binance.parsing as parsing
from connectors.binance.parsing import (
    GuessingInstruments,
    Instrument,
    parse_ws_frames,
)
from cryptoflow.level_block import BlockLevels
from cryptoflow.model import DiffLevels
from cryptoflow.schemas import _block_levels_table, _diff_levels_table, level_batches_to_arrow
from tests.support.binance_reference import parse_frame_by_frame

PURE_PYTHON_CHOSEN = os.environ.get("CRYPTOFLOW_PURE_PYTHON_PARSE") == "1"
pytestmark = pytest.mark.skipif(PURE_PYTHON_CHOSEN, reason="CRYPTOFLOW_PURE_PYTHON_PARSE=1: fallback chosen")

INSTRUMENTS = {"NKNUSDT": Instrument("NKNUSDT", "NKN-USDT", "NKN", "USDT", "spot")}


def _depth(i: int = 0, **fields) -> str:
    data = {"e": "depthUpdate", "E": 1633998512068 + i, "s": "NKNUSDT", "U": 10 + 3 * i, "u": 12 + 3 * i,
            "pu": 9 + 3 * i, "b": [["0.35130000", "6195.00000000"]], "a": [["0.35200000", "0.1"], ["0.4", "0"]]}  # fmt: skip
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not ...}
    return orjson.dumps({"stream": "nknusdt@depth@100ms", "data": data}).decode()


def _batch(frames, instruments=INSTRUMENTS):
    errors = []
    events, kept = parse_ws_frames(
        frames, instruments, 5, 99, lambda raw, exc: errors.append((raw, exc.reason))
    )
    return events, kept, errors


def test_the_extension_is_built():
    assert parsing._c_decode is not None, (
        "connectors/binance/_depth.c was not built (make test / pip install -e .)"
    )


@pytest.mark.parametrize("venue", ["binance-spot", "binance-usdm"])
@pytest.mark.parametrize("size", [1, 7, 256])
def test_recordings_decode_in_c_and_equal_the_reference(venue, size):
    from benchmarks.corpus import load_binance

    corpus = load_binance(venue, 1)
    frames = [item for kind, item in corpus.schedule if kind == "ws"]
    instruments = GuessingInstruments(corpus.market)
    got = []
    for start in range(0, len(frames), size):
        read = frames[start : start + size]
        assert parsing._c_decode(read) is not None  # the hot case never falls back
        events, kept, errors = _batch(read, instruments)
        assert kept == read and not errors
        got += events
    want, _, _ = parse_frame_by_frame(frames, instruments, 99)
    assert len(got) > 100 and got == want
    assert all(type(e.payload) is BlockLevels for e in got)
    # materialised levels have exactly the reference's types and values
    assert [tuple(e.payload) for e in got] == [w.payload for w in want]


ODD = [
    # shapes the C decoder must decline, each with its reason
    _depth(pu=None), _depth(U="10"), _depth(E=1.0), _depth(u=True), _depth(E=...), _depth(b=...),
    _depth(e="depthUpdateX"), _depth(e="aggTrade"), _depth(b=[["1", "2", "3"]]),
    _depth(b=[["1"]]), _depth(a=[[1, "2"]]), _depth(a=[]).replace('"a":[]', '"a":{}'), _depth(extra=1),
    _depth(T="1"), _depth(U=2**63), _depth().replace('"U":10', f'"U":{2**64 + 5}'), _depth().replace('"E":1633998512068', f'"E":{-(2**63) - 1}'),
    _depth().replace(":10,", ":1180591620717411303424,"), _depth().replace('"U":10', '"U":010'),
    _depth().replace('"U":10', '"U":1e1'), _depth().replace('"U":10', '"U":10.0'),
    _depth().replace('"s":"NKNUSDT"', '"s":"NKN\\u0055SDT"'), _depth().replace("0.35130000", "0.3513\\u0030000"),
    _depth().replace('"stream":"nknusdt@depth@100ms"', '"stream":"nkn\\/usdt"'),
    _depth().replace('"u":12', '"u":12,"u":13'), _depth()[:-1] + ',"x":1}', _depth()[:-1] + ',"stream":"y"}',
    _depth().replace('"stream":"nknusdt@depth@100ms",', ""), _depth().replace('"0.4"', '"0.4é"'),
    '{"e":"depthUpdate","E":1,"s":"NKNUSDT","U":1,"u":2,"b":[],"a":[]', "{not json", '{"result":null,"id":1}',
    '"text"', "[1,2]", "", " ", '{"stream":"x","data":{"e":"depthUpdate"', '"s":"NKNUSDT"}}', '{"a":1},{"data":{}}',
    _depth() + _depth(), _depth() + "x", "\x00" + _depth(),
    '{"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"NKNUSDT","a":1,"p":"1","q":"2","T":1,"m":true}}',
]  # fmt: skip

HANDLED = [
    # unusual but inside the strict shape: the C decoder takes these
    _depth(), _depth(pu=...), _depth(b=[], a=[]), _depth(T=1633998512067), _depth(U=-5, u=0),
    _depth(U=2**63 - 1, u=2**63 - 1, pu=-(2**63)), " \t\r\n" + _depth() + "\n ",
    _depth().replace(",", " , ").replace(":", " : ").replace("[", "[ ").replace("]", " ]").replace("{", "{ "),
    '{"e":"depthUpdate","E":1,"s":"NKNUSDT","U":1,"u":2,"b":[],"a":[]}',
    '{"data":{"a":[["3","4"]],"b":[["1","2"]],"u":2,"U":1,"s":"NKNUSDT","E":1,"e":"depthUpdate"},"stream":"s"}',
    _depth(b=[["", "x y"]]), _depth().replace("NKNUSDT", "XYZUSDT"),  # unknown symbol: handled, then declined
]  # fmt: skip


@pytest.mark.parametrize("odd", ODD)
def test_c_declines_anything_outside_its_shape(odd):
    assert parsing._c_decode([_depth(0), odd, _depth(1)]) is None
    assert parsing._c_decode([odd.encode("utf-8")]) is None


@pytest.mark.parametrize("frame", HANDLED)
def test_c_takes_the_unusual_frames_inside_its_shape(frame):
    assert parsing._c_decode([frame]) is not None and parsing._c_decode([frame.encode()]) is not None


# Ids beyond 64 bits: the msgspec path (taken when C declines) keeps them exact, `parse_ws_frame` rounds
# them through orjson's float. A difference between the two existing paths, not the C decoder's.
BEYOND_64_BITS = {ODD.index(f) for f in ODD if "18446744073709551621" in f or "-9223372036854775809" in f}


@pytest.mark.parametrize("odd", ODD + HANDLED)
@pytest.mark.parametrize("position", [0, 4, 8])
@pytest.mark.parametrize("as_bytes", [False, True])
def test_a_read_with_an_odd_frame_anywhere_equals_the_existing_path(odd, position, as_bytes, monkeypatch):
    """Events, kept frames and errors equal the path without the C decoder and, but for ids beyond 64
    bits, `parse_ws_frame` frame by frame."""
    frames = [_depth(i) for i in range(8)]
    frames.insert(position, odd)
    if as_bytes:
        frames = [f.encode() for f in frames]
    got = _batch(frames)
    if odd not in ODD or ODD.index(odd) not in BEYOND_64_BITS:
        assert got == parse_frame_by_frame(frames, INSTRUMENTS, 99)
    monkeypatch.setattr(parsing, "_c_decode", None)
    assert got == _batch(frames)


def test_truncated_frames_are_declined():
    frame = _depth()
    for cut in range(len(frame)):
        assert parsing._c_decode([frame[:cut]]) is None
        assert parsing._c_decode([_depth(1), frame[:cut].encode()]) is None


def test_non_list_and_non_text_reads():
    assert parsing._c_decode([]) is not None  # empty read: nothing to do
    assert parsing._c_decode([bytearray(_depth().encode())]) is None
    assert parsing._c_decode([memoryview(_depth().encode())]) is None
    with pytest.raises(TypeError):
        parsing._c_decode((_depth(),))
    assert _batch([]) == ([], [], [])


def test_random_mutations_never_disagree_with_the_reference():
    """Strictness: whenever the decoder takes a mutated read, its events equal `parse_ws_frame`'s."""
    rng = random.Random(7)
    base = [_depth(i) for i in range(3)]
    alphabet = '{}[]",:0123456789.-eE \\aAbBsSuUpTx'
    taken = 0
    for _ in range(4000):
        frames = list(base)
        k = rng.randrange(3)
        s = list(frames[k])
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(s))
            op = rng.random()
            if op < 0.4:
                s[pos] = rng.choice(alphabet)
            elif op < 0.7:
                del s[pos]
            else:
                s.insert(pos, rng.choice(alphabet))
        frames[k] = "".join(s)
        if parsing._c_decode(frames) is None:
            continue
        taken += 1
        assert _batch(frames) == parse_frame_by_frame(frames, INSTRUMENTS, 99), frames[k]
    assert taken > 100  # the mutations reach the handled side too


def test_block_levels_read_and_pickle_as_the_tuple():
    events, _, _ = _batch([_depth(0), _depth(1, b=[], a=[["9", "1"]])])
    p0, p1 = events[0].payload, events[1].payload
    assert type(p0) is BlockLevels
    assert p0 == ([["0.35130000", "6195.00000000"]], [["0.35200000", "0.1"], ["0.4", "0"]])
    bids, asks = p1
    assert (bids, asks) == ([], [["9", "1"]]) and p1[1] == asks and len(p1) == 2
    assert repr(p1) == repr(([], [["9", "1"]]))
    restored = pickle.loads(pickle.dumps(events[0]))
    assert type(restored.payload) is tuple and restored == events[0]
    levels = DiffLevels(events[0])
    assert levels.sides == ["bid", "ask", "ask"] and levels.prices == ["0.35130000", "0.35200000", "0.4"]


def test_gather_rejects_bad_blocks():
    from cryptoflow.level_block import gather

    events, _, _ = _batch([_depth(0)])
    block = events[0].payload.block
    with pytest.raises(IndexError):
        gather([block], [1])
    with pytest.raises(ValueError):
        gather([block[:5]], [0])
    with pytest.raises(ValueError):
        gather([(b"", *block[1:])], [0])


@pytest.mark.parametrize("venue", ["binance-spot", "binance-usdm"])
def test_delta_rows_from_blocks_equal_rows_from_nested_lists(venue):
    """The sink's Arrow build from level blocks (C gather) = the nested-list build, read by read and mixed."""
    from benchmarks.corpus import load_binance

    corpus = load_binance(venue, 1)
    frames = [item for kind, item in corpus.schedule if kind == "ws"]
    instruments = GuessingInstruments(corpus.market)
    events = []
    for start in range(0, len(frames), 64):
        events += _batch(frames[start : start + 64], instruments)[0]
    events = [replace(e, offset=i) for i, e in enumerate(events)]
    as_lists = [replace(e, payload=tuple(e.payload)) for e in events]
    rng = random.Random(3)
    picked = sorted(rng.sample(range(len(events)), len(events) // 2))  # not contiguous: levels gathered
    positions = list(range(len(picked)))
    got, _ = _block_levels_table([events[i] for i in picked], positions)
    want, key = _diff_levels_table([as_lists[i] for i in picked], positions)
    assert got.equals(want.take(pytest.importorskip("pyarrow.compute").sort_indices(key)))
    mixed = [DiffLevels(events[i] if i % 3 else as_lists[i]) for i in picked]
    assert level_batches_to_arrow(mixed).equals(
        level_batches_to_arrow([DiffLevels(as_lists[i]) for i in picked])
    )
    assert level_batches_to_arrow([DiffLevels(events[i]) for i in picked]).equals(got)


def test_without_the_extension_reads_take_the_msgspec_path(monkeypatch):
    """The pure fallback (no compiler): the same events as the C path, as plain tuples."""
    frames = [_depth(i) for i in range(5)]
    with_c = _batch(frames)
    monkeypatch.setattr(parsing, "_c_decode", None)
    without = _batch(frames)
    assert without == with_c and all(type(e.payload) is tuple for e in without[0])
