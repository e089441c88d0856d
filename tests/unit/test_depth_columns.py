"""The columnar read path (a socket read of Binance depth diffs as per-symbol `DepthGroup` columns, from
the C decoder to the delta table's Arrow build) against the per-frame path it replaces, which stays the
reference: the same committed rows, gap rows, snapshot requests, duplicate and bad-frame counts on the
real recordings and on adversarial streams (gaps, duplicates, reordering, malformed frames, unknown
symbols, control frames, snapshots mid-run). Also the decoder's columns and chain flags against values
computed here from the JSON, and the gather of groups against the per-frame gather."""

from __future__ import annotations

import itertools
import os
import pickle
import random
from array import array

import orjson
import pytest

from benchmarks.corpus import binance_instruments_json, load_binance
from connectors.binance.client import SPOT, USDM, BinanceClient
from connectors.binance.parsing import Instrument, parse_depth_read, parse_exchange_info
from connectors.journal import JournalWriter
from cryptoflow.config import Settings
from cryptoflow.level_block import DepthGroup, gather, gather_groups
from cryptoflow.model import Market
from tests.support.binance_reference import parse_frame_by_frame
from tests.support.columnar_pipeline import depth_frame, run_pipeline, snapshot_body

PURE_PYTHON_CHOSEN = os.environ.get("CRYPTOFLOW_PURE_PYTHON_PARSE") == "1"
pytestmark = pytest.mark.skipif(PURE_PYTHON_CHOSEN, reason="CRYPTOFLOW_PURE_PYTHON_PARSE=1: fallback chosen")


def _corpus_case(venue: str, reps: int, read: int):
    corpus = load_binance(venue, reps)
    market = Market.PERP if corpus.market == "perp" else Market.SPOT
    instruments = parse_exchange_info(orjson.dumps({"symbols": binance_instruments_json(corpus)}), market)
    schedule, frames = [], []
    for kind, item in corpus.schedule:
        if kind == "ws":
            frames.append(item)
            if len(frames) == read:
                schedule.append(("read", frames))
                frames = []
            continue
        if frames:
            schedule.append(("read", frames))
            frames = []
        schedule.append(("rest", (item, corpus.snapshots[item].body)))
    if frames:
        schedule.append(("read", frames))
    return corpus, instruments, schedule


@pytest.mark.parametrize("venue", ["binance-spot", "binance-usdm"])
@pytest.mark.parametrize("read", [1, 37, 256])
def test_recordings_commit_the_same_rows_as_the_per_frame_path(venue, read, monkeypatch):
    corpus, instruments, schedule = _corpus_case(venue, 3, read)
    market = USDM if venue == "binance-usdm" else SPOT
    fast = run_pipeline(schedule, instruments, market, columnar=True, monkeypatch=monkeypatch)
    ref = run_pipeline(schedule, instruments, market, columnar=False, monkeypatch=monkeypatch)
    assert fast.delta.num_rows == corpus.expected_rows == ref.delta.num_rows  # independent count
    assert fast.rows() == ref.rows()
    assert fast.gaps.num_rows == ref.gaps.num_rows == 0
    assert ref.depth_reads == 0
    # the fast path carried nearly every read after the last REST snapshot (not the ones that straddle it)
    last_rest = max(i for i, (kind, _) in enumerate(schedule) if kind == "rest")
    after = sum(1 for kind, _ in schedule[last_rest:] if kind == "read")
    assert fast.depth_reads >= 0.9 * after - 1 > 0


def test_decoder_columns_and_chain_flags_equal_the_json(monkeypatch):
    for venue in ("binance-spot", "binance-usdm"):
        corpus = load_binance(venue, 2)
        instruments = parse_exchange_info(
            orjson.dumps({"symbols": binance_instruments_json(corpus)}),
            Market.PERP if corpus.market == "perp" else Market.SPOT,
        )
        rng = random.Random(7)
        frames = list(corpus.frames[:300])
        rng.shuffle(frames[:40])  # some out-of-order frames: chains must break there
        frames[:40] = sorted(frames[:40], key=lambda _: rng.random())
        read = parse_depth_read(frames, instruments, 3, 42)
        assert read is not None and read.span == len(frames)
        datas = [orjson.loads(f)["data"] for f in frames]
        seen: list[str] = []
        for d in datas:
            if d["s"] not in seen:
                seen.append(d["s"])
        assert [g.exchange_symbol for g in read.groups] == seen
        for g in read.groups:
            mine = [i for i, d in enumerate(datas) if d["s"] == g.exchange_symbol]
            assert list(memoryview(g.pos).cast("i")) == mine
            assert list(array("q", g.E_us)) == [datas[i]["E"] * 1000 for i in mine]
            assert list(array("q", g.U)) == [datas[i]["U"] for i in mine]
            assert list(array("q", g.u)) == [datas[i]["u"] for i in mine]
            if "pu" in datas[mine[0]]:
                assert list(array("q", g.pu)) == [datas[i]["pu"] for i in mine]
            else:
                assert g.pu is None and g.first_pu is None
            pairs = list(itertools.pairwise(mine))
            spot = all(datas[b]["u"] > datas[a]["u"] and datas[b]["U"] <= datas[a]["u"] + 1 for a, b in pairs)
            usdm = all(
                datas[b].get("pu") == datas[a]["u"] and datas[b]["u"] > datas[a]["u"] for a, b in pairs
            )
            assert (g.spot_chain, g.usdm_chain) == (spot, usdm)
            assert (g.first_U, g.first_u, g.seq) == (
                datas[mine[0]]["U"],
                datas[mine[0]]["u"],
                datas[mine[-1]]["u"],
            )
            # the group's events are the per-frame parser's events (levels, ids, times)
            g.base = 1000
            ref, _, _ = parse_frame_by_frame([frames[i] for i in mine], instruments, 42, shard=3)
            for ev, want, i in zip(g.events(), ref, mine, strict=True):
                want.offset = 1000 + i
                assert ev == want and ev.payload == want.payload
        # gather over the groups == the per-frame gather of the same frames, in the same order
        idx = [i for g in read.groups for i in memoryview(g.pos).cast("i")]
        block = read.groups[0].block
        grouped = gather_groups([g.block for g in read.groups], [g.pos for g in read.groups])
        assert grouped[:6] == gather([block] * len(idx), idx)
        assert list(memoryview(grouped[6]).cast("i")) == [
            k for k, g in enumerate(read.groups) for _ in range(g.n)
        ]


def test_reads_outside_the_strict_shape_are_declined():
    inst = {"AUSDT": Instrument("AUSDT", "A-USDT", "A", "USDT", "spot")}
    good = depth_frame("AUSDT", 1, 2, None, 1, [["1", "2"]], [])
    with_pu = depth_frame("AUSDT", 3, 4, 2, 2, [["1", "2"]], [])
    assert parse_depth_read([good, good], inst, 0, 0) is not None
    assert parse_depth_read([good, with_pu], inst, 0, 0) is None  # one symbol, pu sometimes: declined
    assert parse_depth_read([good, '{"result":null,"id":1}'], inst, 0, 0) is None
    assert parse_depth_read([good, good[:-3]], inst, 0, 0) is None
    assert parse_depth_read([good, depth_frame("ZZZ", 1, 2, None, 1, [], [])], inst, 0, 0) is None
    assert parse_depth_read([], inst, 0, 0) is None


def test_groups_pickle_and_events_survive(monkeypatch):
    inst = {"AUSDT": Instrument("AUSDT", "A-USDT", "A", "USDT", "spot")}
    frames = [
        depth_frame("AUSDT", 1 + 2 * i, 2 + 2 * i, None, 10 + i, [["1.5", "2"]], [["1.6", "0"]])
        for i in range(3)
    ]
    read = parse_depth_read(frames, inst, 0, 5)
    read.place(77)
    (group,) = read.groups
    back = pickle.loads(pickle.dumps(group))
    assert isinstance(back, DepthGroup) and back.offset == group.offset == 79
    assert back.offsets() == [77, 78, 79]
    assert [e.payload for e in back.events()] == [e.payload for e in group.events()]


def test_columnar_needs_a_queue_and_no_journal(tmp_path):
    settings = Settings()
    cfg = settings.exchanges.binance.spot
    writer = JournalWriter(tmp_path / "j", False, 100, 1 << 20)
    try:
        client = BinanceClient(SPOT, cfg, settings.connector, ["AUSDT"], {"depth"}, 0, writer, columnar=True)
        assert not client.columnar  # the journal keeps one record per frame; its decoder is per frame
    finally:
        writer.close()


# ------------------------------------------------------------------------------------ adversarial


def _chain(market: str, symbol: str, n: int, rng: random.Random, start: int) -> list[dict]:
    out, last, ts = [], start, 1_700_000_000_000
    for _ in range(n):
        if market == SPOT:
            first = last + 1
            new = first + rng.randrange(0, 4)
        else:
            first = last + rng.randrange(1, 6)
            new = first + rng.randrange(0, 6)
        ts += rng.randrange(0, 150)
        bids = [[f"{rng.randrange(90, 100)}.{rng.randrange(0, 99):02d}", rng.choice(["0", "1.5", "0.002"])]
                for _ in range(rng.randrange(0, 4))]  # fmt: skip
        asks = [[f"{rng.randrange(100, 110)}.{rng.randrange(0, 99):02d}", rng.choice(["0", "3", "0.25"])]
                for _ in range(rng.randrange(0, 4))]  # fmt: skip
        out.append(dict(symbol=symbol, first=first, last=new, prev=last if market == USDM else None, ts=ts,
                        bids=bids, asks=asks))  # fmt: skip
        last = new
    return out


def _frame(d: dict) -> str:
    return depth_frame(d["symbol"], d["first"], d["last"], d["prev"], d["ts"], d["bids"], d["asks"])


def _snapshot(market: str, book_id: int) -> str:
    return snapshot_body(
        book_id, [["95.00", "1"]], [["105.00", "2"]], 1_700_000_000_000 if market == USDM else None
    )


def _adversarial_schedule(market: str, seed: int, faults: set[str]) -> tuple[dict, list]:
    rng = random.Random(seed)
    symbols = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
    instruments = {s: Instrument(s, s[:3] + "-USDT", s[:3], "USDT", "spot" if market == SPOT else "perp")
                   for s in symbols}  # fmt: skip
    chains = {s: _chain(market, s, 120, rng, 1000 * (k + 1)) for k, s in enumerate(symbols)}
    # interleave the symbols' chains
    stream: list[tuple[str, dict]] = []
    cursors = dict.fromkeys(symbols, 0)
    while any(cursors[s] < len(chains[s]) for s in symbols):
        s = rng.choice([s for s in symbols if cursors[s] < len(chains[s])])
        stream.append(("frame", chains[s][cursors[s]]))
        cursors[s] += 1
    items: list[tuple[str, object]] = []
    snapped: set[str] = set()
    for _kind, d in stream:
        text = _frame(d)
        if "gap" in faults and rng.random() < 0.02:
            continue  # the frame is lost: a gap
        items.append(("frame", text))
        if "duplicate" in faults and rng.random() < 0.03:
            items.append(("frame", text))
        if "stale" in faults and rng.random() < 0.02 and len(items) > 30:
            items.append(items[rng.randrange(len(items) - 30, len(items) - 1)])  # an old frame again
        if "malformed" in faults and rng.random() < 0.02:
            items.append(("frame", text[: rng.randrange(1, len(text) - 1)]))
        if "unknown" in faults and rng.random() < 0.02:
            items.append(("frame", _frame({**d, "symbol": "ZZZUSDT"})))
        if "control" in faults and rng.random() < 0.02:
            items.append(("frame", '{"result":null,"id":7}'))
        # the first snapshot of a symbol straddles its 5th..10th frame; "resnapshot" adds more later
        if d["symbol"] not in snapped and rng.random() < 0.1:
            snapped.add(d["symbol"])
            low = d["first"] - 1 if market == SPOT else d["first"]  # the frame just read straddles it
            items.append(
                (
                    "rest",
                    (
                        d["symbol"],
                        _snapshot(market, rng.randint(low, d["last"] - 1 if market == SPOT else d["last"])),
                    ),
                )
            )
        elif "resnapshot" in faults and rng.random() < 0.01:
            items.append(("rest", (d["symbol"], _snapshot(market, d["last"] - rng.randrange(0, 40)))))
    if "reorder" in faults:
        for _ in range(len(items) // 40):
            i = rng.randrange(len(items) - 1)
            items[i], items[i + 1] = items[i + 1], items[i]
    # cut into reads of random sizes; a REST snapshot arrives between reads
    schedule, read = [], []
    size = rng.randrange(1, 40)
    for kind, item in items:
        if kind == "rest":
            if read:
                schedule.append(("read", read))
                read, size = [], rng.randrange(1, 40)
            schedule.append(("rest", item))
            continue
        read.append(item)
        if len(read) >= size:
            schedule.append(("read", read))
            read, size = [], rng.randrange(1, 40)
    if read:
        schedule.append(("read", read))
    return instruments, schedule


FAULTS = ["gap", "duplicate", "stale", "malformed", "unknown", "control", "resnapshot", "reorder"]


@pytest.mark.parametrize("market", [SPOT, USDM])
@pytest.mark.parametrize(
    "faults", [(), *[(f,) for f in FAULTS], tuple(FAULTS)], ids=lambda f: "+".join(f) or "clean"
)
def test_adversarial_streams_commit_the_same_as_the_per_frame_path(market, faults, monkeypatch):
    for seed in range(4):
        instruments, schedule = _adversarial_schedule(market, seed, set(faults))
        serve = seed % 2 == 1  # odd seeds: requested snapshots arrive, books recover mid-stream
        fast = run_pipeline(schedule, instruments, market, columnar=True, serve_snapshots=serve,
                            monkeypatch=monkeypatch)  # fmt: skip
        ref = run_pipeline(schedule, instruments, market, columnar=False, serve_snapshots=serve,
                           monkeypatch=monkeypatch)  # fmt: skip
        assert fast.rows() == ref.rows(), (seed, faults)
        assert fast.gap_rows() == ref.gap_rows()
        assert fast.snapshot_requests == ref.snapshot_requests
        assert fast.duplicates_dropped == ref.duplicates_dropped
        assert fast.bad_frames == ref.bad_frames
        assert ref.delta.num_rows > 0
        if not faults:
            assert fast.depth_reads > 0 and fast.gaps.num_rows == 0
        if "gap" in faults:
            assert ref.gaps.num_rows > 0 or seed  # at least the first seeds lose a frame mid-book


def test_a_column_read_weighs_its_frames_in_the_handoff_queue():
    from connectors.handoff import HandoffQueue

    q = HandoffQueue(10)
    assert q.put_weighted("read-8", 8, timeout=0)
    q.put("event")
    assert q.qsize() == 9 and not q.full()
    assert not q.put_weighted("read-4", 4, timeout=0.01)  # 9 + 4 > 10: waits, times out
    assert q.extend(["a", "b"]) == 1  # one slot left
    assert q.full()
    assert q.drain(100) == ["read-8", "event", "a"]
    assert q.qsize() == 7  # the read's extra weight is held until the consumer releases it
    q.release(7)
    assert q.qsize() == 0 and q.empty()
    assert q.put_weighted("read-50", 50, timeout=0)  # heavier than the cap: still goes into an empty queue
    assert q.qsize() == 50 and q.put_weighted("x", 1, timeout=0) is False


def test_the_partition_places_reads_and_releases_their_weight(monkeypatch):
    inst = {"AUSDT": Instrument("AUSDT", "A-USDT", "A", "USDT", "spot")}
    frames = [depth_frame("AUSDT", 1 + 2 * i, 2 + 2 * i, None, 10 + i, [["1.5", "2"]], []) for i in range(5)]
    from connectors.handoff import HandoffQueue
    from connectors.signals import END
    from connectors.source import ShardPartition
    from tests.support.columnar_pipeline import _Idle

    q = HandoffQueue(100)
    read = parse_depth_read(frames, inst, 0, 1)
    q.put_weighted(read, read.span)
    q.put("snapshot-stand-in")
    q.put(END)
    part = ShardPartition("shard-00000", [_Idle()], q, 500, 10, 1)

    class Item:
        offset = -1

    q._items[1] = stand_in = Item()
    batch = part.next_batch()
    assert batch == [read, stand_in] and read.groups[0].offsets() == [500, 501, 502, 503, 504]
    assert stand_in.offset == 505 and part.next_offset == 506
    assert q.qsize() == 0


def _texts(values: list[str]) -> tuple[bytes, bytes]:
    offsets = [0]
    for v in values:
        offsets.append(offsets[-1] + len(v))
    return "".join(values).encode(), array("i", offsets).tobytes()


def test_decimal_texts_parse_in_c_exactly_as_arrow_casts_them():
    import pyarrow as pa

    from cryptoflow.level_block import decimals
    from cryptoflow.schemas import ARROW_DECIMAL, _decimal_texts

    rng = random.Random(3)
    values = ["0", "0.0", "00.5", "1", "0.000000000000000001", "99999999999999999999.999999999999999999"]
    values += [f"{rng.randrange(10**rng.randrange(0, 21))}.{rng.randrange(10**18):0{rng.randrange(1, 19)}d}"[:40]
               for _ in range(2000)]  # fmt: skip
    values = [v if len(v.split(".")[-1]) <= 18 else v[: v.index(".") + 19] for v in values]
    for corpus_name in ("binance-spot", "binance-usdm"):
        for frame in load_binance(corpus_name, 1).frames[:200]:
            data = orjson.loads(frame)["data"]
            values += [t for level in data["b"] + data["a"] for t in level]
    data, offsets = _texts(values)
    assert decimals(data, offsets, 18) is not None
    want = pa.array(values, pa.string()).cast(ARROW_DECIMAL)
    assert _decimal_texts(len(values), data, offsets).equals(want)
    # anything outside the plain shape declines the whole column: Arrow's cast decides (or raises)
    for odd in ["1e5", "-1", "", ".5", "1.", "+1", "1.0000000000000000001", "123456789012345678901", " 1"]:
        d, o = _texts(["1.5", odd])
        assert decimals(d, o, 18) is None, odd
    d, o = _texts(["1.5", "1E2"])
    assert _decimal_texts(2, d, o).equals(pa.array(["1.5", "1E2"]).cast(ARROW_DECIMAL))
