"""The Kraken v2 hot path: the lean book-frame parse (compiled and regex) against the general JSON decoder,
the compiled CRC32 against zlib over the pure-Python checksum text, and the client's checksum-only book
against the dataflow's `BookTracker` on the same faulty streams."""

from __future__ import annotations

import json
import random
import zlib
from decimal import Decimal

import pytest

from connectors.kraken import parsing
from connectors.kraken.parsing import KrakenV2Parser, regex_v2_book
from connectors.parse_errors import ParseError
from cryptoflow.model import Kind, RawEvent
from cryptoflow.simulator.synthetic.market import SyntheticMarket
from cryptoflow.simulator.synthetic.paced import pregenerate
from operators.book import _levels
from operators.book.checksum_book import KrakenChecksumBook
from operators.book.checksums import kraken_checksum
from operators.book.levels import OrderBook, PySide
from operators.book.tracker import KRAKEN, BookSettings, BookTracker
from tests.support.book_truth import FIXTURES

VECTOR = FIXTURES / "kraken" / "kraken_v2_book_snapshot_ALGO-USD_checksum_vector.json"
STAMP = b"2026-11-26T16:00:00.123456Z"


@pytest.fixture(scope="module")
def frames() -> list[str]:
    """Synthetic update and snapshot frames as the paced venue sends them, and the real v2 snapshot."""
    market = SyntheticMarket([f"S{i:03d}-USD" for i in range(8)], depth=10, seed=5, keep_truth=False)
    book = pregenerate(market, 3000)
    heads = [*book.heads, *book.snapshots.values()]
    return [(head + STAMP + b'"}]}').decode() for head in heads] + [VECTOR.read_text().strip()]


def general(raw: str, depth: int = 10) -> list[RawEvent]:
    """The general path alone (the lean one switched off)."""
    saved = parsing.lean_v2_book
    parsing.lean_v2_book = lambda text: None
    try:
        return KrakenV2Parser(depth).parse(raw, 7)
    finally:
        parsing.lean_v2_book = saved


def test_the_compiled_lean_parse_is_the_default():
    assert parsing.lean_v2_book is _levels.kraken_v2_book


def test_lean_paths_give_the_general_decoders_events(frames):
    for raw in frames:
        compiled = _levels.kraken_v2_book(raw)
        assert compiled is not None and compiled == regex_v2_book(raw)
        assert KrakenV2Parser(10).parse(raw, 7) == general(raw)
    (vector,) = KrakenV2Parser(10).parse(frames[-1], 7)
    assert vector.exchange_ts_us is None and vector.kind is Kind.DEPTH_SNAPSHOT
    assert vector.payload[0][1] == ["0.12290", "8136.33288180"]  # the literal text, trailing zero kept
    book = OrderBook()
    book.load(*vector.payload)
    assert kraken_checksum(book) == vector.checksum == 2375857985


UPDATE = (
    '{"channel":"book","type":"update","data":[{"symbol":"ALGO/USD","bids":[{"price":0.12290,"qty":1.5}],'
    '"asks":[],"checksum":42,"timestamp":"2026-11-26T16:00:00.5Z"}]}'
)
FALLBACKS = {
    "whitespace": UPDATE.replace('"bids":', '"bids": '),
    "key order": UPDATE.replace('"checksum":42,"timestamp":"2026-11-26T16:00:00.5Z"',
                                '"timestamp":"2026-11-26T16:00:00.5Z","checksum":42'),
    "escaped symbol": UPDATE.replace("ALGO/USD", "ALGO\\/USD"),
    "two books": UPDATE.replace("}]}", '},{"symbol":"X/USD","bids":[],"asks":[],"checksum":1}]}'),
    "extra level field": UPDATE.replace('"qty":1.5}', '"qty":1.5,"x":1}'),
}  # fmt: skip
MALFORMED = {
    "leading zero": UPDATE.replace('"qty":1.5', '"qty":01.5'),
    "bare dot": UPDATE.replace('"qty":1.5', '"qty":1.'),
    "bad exponent": UPDATE.replace('"qty":1.5', '"qty":1e'),
    "trailing garbage": UPDATE + "x",
    "truncated": UPDATE[:-3],
    "control char": UPDATE.replace("ALGO/USD", "ALGO\x01USD"),
    "level comma": UPDATE.replace('"qty":1.5}]', '"qty":1.5},]'),
}


def test_any_json_number_is_kept_as_its_literal_text():
    raw = UPDATE.replace('"qty":1.5', '"qty":-1.5E+03').replace('"price":0.12290', '"price":0')
    assert _levels.kraken_v2_book(raw) == regex_v2_book(raw) is not None
    (event,) = KrakenV2Parser(10).parse(raw, 7)
    assert event == general(raw)[0] and event.payload[0] == [["0", "-1.5E+03"]]


@pytest.mark.parametrize("name", sorted(FALLBACKS))
def test_other_layouts_take_the_general_path_with_the_same_result(name):
    raw = FALLBACKS[name]
    assert _levels.kraken_v2_book(raw) is None and regex_v2_book(raw) is None
    events = KrakenV2Parser(10).parse(raw, 7)
    assert events == general(raw)
    expected = json.loads(raw, parse_float=str, parse_int=str)["data"][0]
    assert events[0].payload[0] == [[lv["price"], lv["qty"]] for lv in expected["bids"]]


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_json_is_never_taken_by_the_lean_paths(name):
    raw = MALFORMED[name]
    assert _levels.kraken_v2_book(raw) is None and regex_v2_book(raw) is None
    with pytest.raises(ParseError) as err:
        KrakenV2Parser(10).parse(raw, 7)
    assert err.value.reason == "malformed_json"


def _random_book(rng: random.Random) -> OrderBook:
    book = OrderBook(side=PySide)
    mid = rng.choice([0.0001, 0.12, 18.4, 99.99, 65000, 1e12, 9.2e18])
    places = rng.randint(0, 8)
    for side, sign in ((book.bids, -1), (book.asks, 1)):
        for k in range(rng.randint(0, 14)):
            price = f"{mid * (1 + sign * (k + 1) * 1e-4):.{places}f}"
            qty = f"{rng.uniform(0, 10 ** rng.randint(0, 10)):.{rng.randint(0, 8)}f}"
            if float(price) > 0 and float(qty) > 0:
                side.set(price, qty)
    return book


def test_compiled_crc_equals_zlib_over_the_python_checksum_text():
    rng = random.Random(11)
    for _ in range(400):
        python_book = _random_book(rng)
        compiled = OrderBook()
        compiled.load(python_book.bids.top(100), python_book.asks.top(100))
        expected = kraken_checksum(python_book)  # PySide: the text joined in Python, zlib.crc32
        assert _levels.kraken_crc32(compiled.asks, compiled.bids, 10) == expected
        assert kraken_checksum(compiled) == expected


def _faulty_stream(seed: int) -> list[RawEvent]:
    """Synthetic frames for 4 symbols, parsed; the first update of each symbol is lost, has a wrong
    checksum, crosses the book or has a malformed level; later an (old) snapshot of each arrives, the
    answer to a resubscribe, which later updates do not fit either."""
    market = SyntheticMarket([f"S{i}-USD" for i in range(4)], depth=10, seed=seed, keep_truth=False)
    book = pregenerate(market, 1200)
    parser = KrakenV2Parser(10)
    snapshot = {s: parser.parse((h + STAMP + b'"}]}').decode(), 0)[0] for s, h in book.snapshots.items()}
    events = list(snapshot.values())
    faults = iter(["lost", "checksum", "crossed", "bad_event"])
    seen: set[str] = set()
    for i, head in enumerate(book.heads):
        ev = parser.parse((head + STAMP + b'"}]}').decode(), 0)[0]
        if ev.exchange_symbol not in seen:
            seen.add(ev.exchange_symbol)
            fault = next(faults, None)
            if fault == "lost":
                continue
            if fault == "checksum":
                ev.checksum ^= 1
            elif fault == "crossed":  # a bid above every ask, with the checksum of that crossed book
                ev.payload = ([["1000000", "1"]], [])
                crossed = OrderBook()
                crossed.load(*snapshot[ev.exchange_symbol].payload)
                crossed.apply(*ev.payload)
                crossed.bids.truncate(10, remember=False)
                ev.checksum = kraken_checksum(crossed)
            elif fault == "bad_event":
                ev.payload = ([["1.2.3", "1"]], [])
        events.append(ev)
        if i in (500, 600, 700, 800):
            events.append(snapshot[book.symbols[i]])
    return events


def test_the_checksum_book_breaks_exactly_where_the_tracker_does():
    for seed in (1, 2, 3):
        trackers: dict[str, BookTracker] = {}
        mirrors: dict[str, KrakenChecksumBook] = {}
        tracker_breaks, mirror_breaks = [], []
        for n, ev in enumerate(_faulty_stream(seed)):
            tracker = trackers.setdefault(ev.exchange_symbol, BookTracker(KRAKEN, BookSettings(emit=False)))
            step = tracker.on_event(ev)
            if step.resync:
                tracker_breaks.append((n, step.gaps[0].reason))
            reason = mirrors.setdefault(ev.exchange_symbol, KrakenChecksumBook()).on_event(ev)
            if reason is not None:
                mirror_breaks.append((n, reason))
        assert mirror_breaks == tracker_breaks
        assert {"checksum", "crossed", "bad_event"} <= {reason for _, reason in mirror_breaks}
        for symbol, mirror in mirrors.items():
            assert mirror.valid == trackers[symbol].valid
            if mirror.valid:
                assert mirror.book.bids.top(20) == trackers[symbol].book.bids.top(20)
                assert mirror.book.asks.top(20) == trackers[symbol].book.asks.top(20)


def _reference_crc(bids: dict, asks: dict) -> int:
    """Kraken's checksum from the texts as sent (docs: best 10 asks then bids, '.' removed, leading
    zeros stripped), over plain dicts: Decimal price -> (price text, qty text)."""
    levels = [asks[p] for p in sorted(asks)[:10]] + [bids[p] for p in sorted(bids, reverse=True)[:10]]
    return zlib.crc32("".join(t.replace(".", "").lstrip("0") for lv in levels for t in lv).encode())


def _reference_stream(seed: int, depth: int = 10) -> list[tuple[RawEvent, str | None]]:
    """A random Kraken v2 book stream with the reason each event must break the book for (or None),
    decided on a dict book truncated to `depth` with a checksum computed from the texts: wrong
    checksums, crossing bids, malformed levels, updates without a checksum, levels beyond the depth."""
    rng = random.Random(seed)
    events: list[tuple[RawEvent, str | None]] = []
    bids: dict = {}
    asks: dict = {}
    valid = False

    def level(ticks: int) -> list[str]:
        return [f"{ticks / 100:.2f}", "0" if rng.random() < 0.2 else f"{rng.uniform(0.001, 5):.8f}"]

    def put(side: dict, levels: list[list[str]], descending: bool) -> None:
        for price, qty in levels:
            if Decimal(qty) == 0:
                side.pop(Decimal(price), None)
            else:
                side[Decimal(price)] = (price, qty)
        for p in sorted(side, reverse=descending)[depth:]:
            del side[p]

    for n in range(3000):
        if not valid or rng.random() < 0.01:
            b = [[f"{(10_000 - 1 - i) / 100:.2f}", f"{rng.uniform(0.001, 5):.8f}"] for i in range(depth)]
            a = [[f"{(10_000 + 1 + i) / 100:.2f}", f"{rng.uniform(0.001, 5):.8f}"] for i in range(depth)]
            bids, asks, kind = {}, {}, Kind.DEPTH_SNAPSHOT
            valid = True
        else:
            b = [level(10_000 - 1 - int(rng.expovariate(1 / 8))) for _ in range(rng.randint(0, 2))]
            a = [level(10_000 + 1 + int(rng.expovariate(1 / 8))) for _ in range(rng.randint(0, 2))]
            kind = Kind.DEPTH_DIFF
        fault = rng.random()
        if kind is Kind.DEPTH_DIFF and fault < 0.01:
            b.append(["99.9.9", "1"])  # malformed: the book can no longer be trusted
            events.append((RawEvent("kraken", "spot", "X-USD", "X/USD", kind, n, n, 0, n, (b, a),
                                    checksum=0, book_depth=depth), "bad_event"))  # fmt: skip
            valid = False
            continue
        if kind is Kind.DEPTH_DIFF and fault < 0.02:
            b.append([f"{(10_000 + 50) / 100:.2f}", "1.00000000"])  # a bid above every ask
        put(bids, b, True)
        put(asks, a, False)
        checksum: int | None = _reference_crc(bids, asks)
        reason = None
        if fault > 0.98:
            checksum ^= 1 << rng.randrange(32)
            reason = "checksum"
        elif fault > 0.95:
            checksum = None  # nothing to check (v1 snapshots)
        if reason is None and bids and asks and max(bids) >= min(asks):
            reason = "crossed"
        events.append((RawEvent("kraken", "spot", "X-USD", "X/USD", kind, n, n, 0, n, (b, a),
                                checksum=checksum, book_depth=depth), reason))  # fmt: skip
        valid = reason is None
    return events


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_both_kraken_books_break_where_an_independent_reference_says(seed):
    stream = _reference_stream(seed)
    expected = [(n, reason) for n, (_, reason) in enumerate(stream) if reason is not None]
    assert {"checksum", "crossed", "bad_event"} <= {reason for _, reason in expected}
    mirror = KrakenChecksumBook()
    tracker = BookTracker(KRAKEN, BookSettings(emit=False))
    mirror_breaks, tracker_breaks = [], []
    for n, (ev, _) in enumerate(stream):
        reason = mirror.on_event(ev)
        if reason is not None:
            mirror_breaks.append((n, reason))
        step = tracker.on_event(ev)
        tracker_breaks += [(n, gap.reason) for gap in step.gaps]
    assert mirror_breaks == expected
    assert tracker_breaks == expected
    checked = [reason for ev, reason in stream if ev.checksum is not None and reason != "bad_event"]
    counts = tracker.counters
    assert (counts.checksum.match, counts.checksum.mismatch) == (
        sum(r != "checksum" for r in checked), checked.count("checksum"))  # fmt: skip
    assert counts.crossed == sum(reason == "crossed" for _, reason in stream)
    assert counts.bad_events == sum(reason == "bad_event" for _, reason in stream)
