"""The compiled Kraken step (`_levels.kraken_step`, one C call per book message) and the compiled row
parts (`_levels.row_levels` / `mid_spread`) against the Python steps they replace, on the same streams:
the real recordings (Kraken v1 `cryptofeed_KRAKEN.ws.50.0`, the v2 checksum vector), the synthetic v2
market, and random
adversarial streams (wrong / odd checksums, crossed books, deletes of absent levels, depth truncation,
our own depth cap, a price written two ways, malformed levels and containers).

Three paths per stream: `checksum_book.load_snapshot` / `apply_update` on compiled sides (the C step),
`python_load_snapshot` / `python_apply_update` on compiled sides (the Python rules over the same side
type: identical books byte for byte, identical verdicts and identical errors, message included), and the
Python rules on pure-Python sides (`PySide`: identical verdicts and books on every input both side types
accept). The tracker's rows and gap rows are compared the same way, with the C step and `row_levels`
switched off for the reference run.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from benchmarks.kraken_path import frames as synthetic_v2_frames
from connectors.kraken.parsing import KrakenV1Parser, KrakenV2Parser
from cryptoflow.model import Kind, RawEvent
from operators.book import checksum_book as cb
from operators.book import tracker as tracker_mod
from operators.book.checksums import kraken_checksum
from operators.book.levels import SIDES, OrderBook, PySide
from operators.book.tracker import KRAKEN, BookSettings, BookTracker, decimal_mid_spread
from tests.support import book_truth as truth

pytestmark = pytest.mark.skipif("c" not in SIDES, reason="the compiled side is not built (no C compiler)")

CSide = SIDES.get("c")


# ------------------------------------------------------------------------------------------- streams
def v1_events() -> list[RawEvent]:
    parser = KrakenV1Parser()
    out: list[RawEvent] = []
    for i, (_, raw) in enumerate(truth.v1_server_frames(truth.KRAKEN_V1)):
        out += parser.parse(raw, 1_000_000 + i)
    return out


def v2_vector_events() -> list[RawEvent]:
    return KrakenV2Parser(10).parse(truth.KRAKEN_V2_VECTOR.read_text().strip(), 1)


def v2_synthetic_events(books: int = 5, count: int = 1500) -> list[RawEvent]:
    parser = KrakenV2Parser(10)
    out: list[RawEvent] = []
    for i, raw in enumerate(synthetic_v2_frames(books, count)):
        out += parser.parse(raw, 1_000_000 + i)
    return out


MALFORMED_LEVELS = [
    [1.5, "1"],  # price not a str
    ["1.5", 1],  # qty not a str
    ["1.5"],  # no qty
    "1.5",  # not a list
    None,
    ["1e5", "1"],  # exponent form
    ["-1.5", "1"],
    ["01.5", "1"],  # leading zero
    ["", "1"],
    ["1.5", "abc"],
    ["99.9.9", "1"],
    ["1.5", "99999999999999999999999"],  # qty beyond 2^63 units
    ["123456789012345678901.5", "1"],  # price beyond 1e20
    ["1.0000000000000000001", "1"],  # 19 places
]
ODD_CHECKSUMS = ["123", True, -1, 2**64 + 5, 0, 2**32 - 1]


def adversarial_events(seed: int, n: int = 1500, malformed: bool = True) -> list[RawEvent]:
    """A random Kraken book stream around 100.00: every fault the rules must judge. Correct checksums
    come from a shadow book on pure-Python sides (the reference rules), so most updates pass and the
    books the three paths compare are deep and varied; `malformed=False` leaves out the levels and
    containers the two side types reject differently (they still both reject them)."""
    rng = random.Random(seed)
    shadow = OrderBook(side=PySide)
    events: list[RawEvent] = []

    def price(ticks: int) -> str:
        text = f"{ticks / 100:.2f}"
        return text + "0" if rng.random() < 0.05 else text  # the same price written two ways

    def qty() -> str:
        r = rng.random()
        if r < 0.15:
            return rng.choice(["0", "0.00000000", "0.0"])  # delete (often of a level we do not hold)
        return (
            f"{rng.uniform(0.00000001, 50):.8f}".rstrip("0").rstrip(".")
            if r < 0.25
            else f"{rng.uniform(0.001, 5):.8f}"
        )

    def levels(side: int, count: int) -> list:
        # bids below 100.00 and asks above, with a small chance of reaching across (a crossed book)
        out: list = []
        for _ in range(count):
            off = int(rng.expovariate(1 / 12)) + 1
            if rng.random() < 0.02:
                off = -rng.randint(1, 5)  # across the mid
            out.append([price(10_000 - side * off), qty()])
        return out

    for i in range(n):
        snapshot = i == 0 or rng.random() < 0.03
        count = rng.randint(5, 40) if snapshot else rng.randint(0, 4)
        bids, asks = levels(1, count), levels(-1, count)
        if snapshot and rng.random() < 0.3:
            rng.shuffle(bids)  # unsorted snapshot, duplicates kept in order
            bids += [list(bids[0])] if bids else []
        if rng.random() < 0.1:
            bids, asks = [tuple(lv) for lv in bids], asks  # tuples are levels too
        depth = rng.choice([10, 10, 10, 25, 3, None, 0])
        payload: tuple = (bids, asks)
        if malformed and rng.random() < 0.04:
            side = rng.choice([bids, asks])
            side.insert(rng.randint(0, len(side)), rng.choice(MALFORMED_LEVELS))
        if malformed and rng.random() < 0.005:
            payload = (None, asks) if rng.random() < 0.5 else (bids, 7)  # not a list of levels
        kind = Kind.DEPTH_SNAPSHOT if snapshot else Kind.DEPTH_DIFF
        ev = RawEvent(
            "kraken", "spot", "X-USD", "X/USD", kind, 1_000_000 * i, i, 0, i, payload, book_depth=depth
        )
        try:
            (cb.python_load_snapshot if snapshot else cb.python_apply_update)(shadow, ev)
            good = kraken_checksum(shadow)
        except cb.BAD_INPUT:
            shadow.clear()
            good = 0
        r = rng.random()
        checksum = good if r < 0.8 else None if r < 0.9 else good ^ (1 << rng.randrange(32)) if r < 0.97 else rng.choice(ODD_CHECKSUMS)  # fmt: skip
        events.append(RawEvent("kraken", "spot", "X-USD", "X/USD", kind, 1_000_000 * i, i, 0, i, payload,
                               checksum=checksum, book_depth=depth))  # fmt: skip
    return events


# -------------------------------------------------------------------------------------------- drivers
def drive(events: list[RawEvent], side: type, step: str, cap: int) -> list[tuple]:
    """Apply every event to its symbol's book (no validity gate: broken and half-applied books keep
    going, so every state is reached and compared); per event the outcome and the book after it."""
    books: dict[str, OrderBook] = {}
    load, apply = (
        (cb.load_snapshot, cb.apply_update)
        if step == "c"
        else (cb.python_load_snapshot, cb.python_apply_update)
    )
    out = []
    for ev in events:
        book = books.get(ev.exchange_symbol)
        if book is None:
            book = books[ev.exchange_symbol] = OrderBook(cap, side=side)
        try:
            outcome: tuple = ("verdict", (load if ev.kind is Kind.DEPTH_SNAPSHOT else apply)(book, ev))
        except cb.BAD_INPUT as exc:
            outcome = ("error", type(exc).__name__, str(exc) if side is CSide else "")
        if side is CSide:
            state: tuple = (book.bids.__getstate__(), book.asks.__getstate__())
        else:
            state = (book.bids.top(len(book.bids)), book.asks.top(len(book.asks)), book.bids.horizon,
                     book.asks.horizon)  # fmt: skip
        out.append((outcome, state))
    return out


def as_levels(results: list[tuple]) -> list[tuple]:
    """Compiled-side results in the pure-Python side's terms (levels and horizons instead of bytes)."""
    out = []
    for outcome, (bids_state, asks_state) in results:
        bids, asks = CSide(descending=True), CSide(descending=False)
        bids.__setstate__(bids_state)
        asks.__setstate__(asks_state)
        out.append((outcome, (bids.top(len(bids)), asks.top(len(asks)), bids.horizon, asks.horizon)))
    return out


def outcomes(results: list[tuple]) -> list:
    return [outcome[:2] for outcome, _ in results]


def real_and_synthetic() -> dict[str, list[RawEvent]]:
    return {
        "v1 recording": v1_events(),
        "v2 vector": v2_vector_events(),
        "v2 synthetic": v2_synthetic_events(),
    }


# -------------------------------------------------------------------------------------------- tests
def test_the_dispatch_takes_the_c_step_on_compiled_sides_only():
    assert cb._STEP_SIDE is CSide  # load_snapshot / apply_update below really run kraken_step
    assert tracker_mod._ROW_SIDE is CSide


@pytest.mark.parametrize("cap", [2000, 15])
def test_recordings_same_verdicts_and_books_on_every_path(cap):
    for name, events in real_and_synthetic().items():
        c_step = drive(events, CSide, "c", cap)
        python_c = drive(events, CSide, "python", cap)
        assert c_step == python_c, name
        python_py = drive(events, PySide, "python", cap)
        assert as_levels(c_step) == python_py, name
        verdicts = [o[1] for o in outcomes(c_step)]
        if cap == 2000:  # the recordings are clean: nothing breaks, every checksum is compared
            assert verdicts == [None] * len(events), name
        else:  # our own cap below Kraken's depth 1000: levels go missing and checksums fail
            assert name != "v1 recording" or "checksum" in verdicts
    assert sum(ev.checksum is not None for ev in v1_events()) == 4269


@pytest.mark.parametrize("seed", range(6))
def test_adversarial_same_verdicts_books_and_errors(seed):
    events = adversarial_events(seed)
    c_step = drive(events, CSide, "c", 30)
    assert c_step == drive(events, CSide, "python", 30)
    kinds = {o[1] if o[0] == "verdict" else o[0] for o in outcomes(c_step)}
    assert {None, "checksum", "crossed", "error"} <= kinds  # every outcome happened


@pytest.mark.parametrize("seed", range(4))
def test_adversarial_canonical_streams_same_on_the_pure_python_side(seed):
    events = adversarial_events(100 + seed, malformed=False)
    c_step = drive(events, CSide, "c", 30)
    assert as_levels(c_step) == drive(events, PySide, "python", 30)
    assert {None, "checksum", "crossed"} <= {o[1] for o in outcomes(c_step)}


def test_malformed_levels_raise_the_same_error_after_the_same_partial_update():
    for bad in MALFORMED_LEVELS:
        for where in ("bids", "asks"):
            good = [["100.01", "1.5"], ["100.02", "2"]]
            bids = [["99.99", "1"], bad] if where == "bids" else [["99.99", "1"]]
            asks = [["100.03", "3"], bad] if where == "asks" else good
            snap = RawEvent("kraken", "spot", "X-USD", "X/USD", Kind.DEPTH_SNAPSHOT, 1, 1, 0, 0,
                            ([["99.98", "1"]], good), checksum=None, book_depth=10)  # fmt: skip
            upd = RawEvent("kraken", "spot", "X-USD", "X/USD", Kind.DEPTH_DIFF, 2, 2, 0, 1, (bids, asks),
                           checksum=1, book_depth=10)  # fmt: skip
            for ev in ([snap, upd], [upd.__class__(**{**_fields(upd), "kind": Kind.DEPTH_SNAPSHOT})]):
                c_step, python_c = drive(ev, CSide, "c", 2000), drive(ev, CSide, "python", 2000)
                assert c_step == python_c, bad
                assert c_step[-1][0][0] == "error", bad


def _fields(ev: RawEvent) -> dict:
    return {name: getattr(ev, name) for name in RawEvent.__dataclass_fields__}


def tracker_run(events: list[RawEvent], side: type | None, monkeypatch, python: bool) -> tuple[list, list]:
    """Every Step (gap rows, rows, resync) and the final counters of per-symbol trackers that emit a
    row on every event (snapshot interval 1 ms, a checkpoint with the whole book every 5 ms)."""
    with monkeypatch.context() as m:
        if python:
            m.setattr(cb, "_STEP_SIDE", None)
            m.setattr(tracker_mod, "_ROW_SIDE", None)
        settings = BookSettings(
            depth_cap=40, snapshot_interval_ms=1, checkpoint_interval_ms=5, snapshot_depth=10
        )
        trackers: dict[str, BookTracker] = {}
        steps = []
        for i, ev in enumerate(events):
            ev = RawEvent(**{**_fields(ev), "exchange_ts_us": 1_000 * i, "offset": i})  # a row per event
            tracker = trackers.get(ev.exchange_symbol)
            if tracker is None:
                tracker = trackers[ev.exchange_symbol] = BookTracker(KRAKEN, settings)
                if side is not None:
                    tracker.book = OrderBook(settings.depth_cap, side=side)
            step = tracker.on_event(ev)
            steps.append((step.gaps, step.rows, step.resync))
        return steps, [trackers[k].counters for k in sorted(trackers)]


@pytest.mark.parametrize("stream", ["recordings", "adversarial", "canonical"])
def test_tracker_rows_and_gaps_identical(stream, monkeypatch):
    if stream == "recordings":
        streams = real_and_synthetic()
        events = streams["v1 recording"][:2000] + streams["v2 vector"] + streams["v2 synthetic"][:1000]
    else:
        events = adversarial_events(
            7 if stream == "adversarial" else 8, n=1200, malformed=stream == "adversarial"
        )
    c_steps, c_counts = tracker_run(events, None, monkeypatch, python=False)
    py_steps, py_counts = tracker_run(events, None, monkeypatch, python=True)
    assert c_steps == py_steps
    assert c_counts == py_counts
    rows = [row for _, rows, _ in c_steps for row in rows]
    assert len(rows) > 50 and any(row.is_checkpoint for row in rows)
    assert any(row.mid is not None for row in rows)
    if stream != "adversarial":  # inputs both side types accept
        pure_steps, pure_counts = tracker_run(events, PySide, monkeypatch, python=True)
        assert c_steps == pure_steps
        assert c_counts == pure_counts
    if stream != "recordings":
        assert {gap.reason for gaps, _, _ in c_steps for gap in gaps} >= {"checksum", "crossed"}


# ----------------------------------------------------------------------------------------- mid_spread
def _decimal_text(rng: random.Random) -> str:
    places = rng.choice([0, 1, 2, 5, 8, 12, 17, 18])
    whole = rng.choice(
        [0, 0, 1, 7, 123, 99_999, 10 ** rng.randint(0, 19) - 1, rng.randint(0, 10 ** rng.randint(0, 19))]
    )
    return str(whole) if places == 0 else f"{whole}.{rng.randint(0, 10**places - 1):0{places}d}"


EDGE_PAIRS = [
    ("0.000000000000000001", "0.000000000000000002"),  # odd sum at 18 places: quantized (and tiny)
    ("1.000000000000000001", "1.000000000000000002"),  # odd sum at 18 places, half-even up
    ("1.000000000000000002", "1.000000000000000003"),  # ... half-even down
    ("99999999999999999999.5", "99999999999999999999.75"),  # beyond 28 digits: Decimal rounds
    ("9999999999.999999999", "9999999999.9999999999"),  # 29 digits in the sum
    ("0.0000001", "0.0000003"),  # exponent form
    ("0.000001", "0.000003"),
    ("100", "101"),
    ("100", "100.50"),
    ("0.12290", "0.12307"),
    ("0", "1"),
]


def test_mid_spread_text_is_what_decimal_gives():
    from operators.book._levels import mid_spread

    rng = random.Random(3)
    pairs = [(_decimal_text(rng), _decimal_text(rng)) for _ in range(60_000)] + EDGE_PAIRS
    fast = 0
    for b, a in pairs:
        if Decimal(b) > Decimal(a):
            b, a = a, b
        bids, asks = CSide(descending=True), CSide(descending=False)
        bids.set(b, "1")
        asks.set(a, "1")
        got = mid_spread(bids, asks)
        if Decimal(a) == Decimal(b):
            assert got is None  # crossed: the tracker never writes it, Decimal would
            continue
        if got is not None:
            fast += 1
            assert got == decimal_mid_spread(b, a), (b, a)
    assert fast > len(pairs) * 0.8  # the fast path is the common one
    empty = CSide(descending=False)
    assert mid_spread(CSide(descending=True), empty) is None


@pytest.mark.parametrize("seed", range(3))
def test_row_levels_is_top_best_prices_and_mid_spread(seed):
    """Empty, one-sided, crossed and deep books, every depth: the lists `top` gives, their first prices,
    and the mid/spread of `mid_spread` (None where Decimal must say)."""
    from operators.book._levels import mid_spread, row_levels

    rng = random.Random(seed)
    for _ in range(300):
        bids, asks = CSide(descending=True), CSide(descending=False)
        for _ in range(rng.choice([0, 1, 3, 30])):
            bids.set(f"{rng.randint(9_000, 10_050) / 100:.2f}", f"{rng.uniform(0.01, 5):.4f}")
        for _ in range(rng.choice([0, 1, 3, 30])):
            asks.set(f"{rng.randint(9_950, 11_000) / 100:.2f}", f"{rng.uniform(0.01, 5):.4f}")
        depth = rng.choice([0, 1, 10, 50, 2000])
        got = row_levels(bids, asks, depth)
        top_b, top_a = bids.top(depth), asks.top(depth)
        best_b = bids.best()[0] if len(bids) else None
        best_a = asks.best()[0] if len(asks) else None
        texts = (mid_spread(bids, asks) if top_b and top_a else None) or (None, None)
        assert got == (top_b, top_a, top_b[0][0] if top_b else None, top_a[0][0] if top_a else None, *texts)
        if depth:
            assert got[2:4] == (best_b, best_a)
        if depth and best_b is not None and best_a is not None and Decimal(best_b) < Decimal(best_a):
            assert texts == decimal_mid_spread(best_b, best_a)  # no fallback on these prices
