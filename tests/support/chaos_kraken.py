"""The Kraken v2 (synthetic market) side of the chaos run: a venue whose snapshots arrive on the
WebSocket, so every break is a lost connection (then a fresh snapshot) and every resync is checked by
the checksum as well as here. Truth is the synthetic market's own history (`market.truth`) and the
simulator's per-connection log (`stats.sessions`: how each connection ended, the last book frame its
client received), never the collector's view."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from cryptoflow.simulator.kraken import KrakenV2SyntheticVenue
from cryptoflow.simulator.server import ExchangeSimulator, SimulatorStats
from cryptoflow.simulator.synthetic.market import UNBOUNDED, SyntheticMarket
from operators.book.levels import OrderBook
from tests.support.book_truth import apply_level_rows

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD"]
DEPTH = 10  # the client's default book depth
RATE = 40.0  # book changes per second
COLUMNS = (
    "exchange",
    "symbol",
    "side",
    "price",
    "qty",
    "is_snapshot",
    "exchange_ts",
    "shard",
    "source_offset",
)
Top = tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]


def venue(seed: int, seconds: float) -> KrakenV2SyntheticVenue:
    """A paced market that runs for `seconds` after the first connection (+2 s for every shard to subscribe)."""
    market = SyntheticMarket(SYMBOLS, depth=30, seed=seed, step_us=20_000)
    return KrakenV2SyntheticVenue(
        market, messages=int(RATE * seconds), rate=RATE, trade_every=0, start_after_s=2.0
    )


def env(sim: ExchangeSimulator) -> dict[str, str]:
    return {
        "CRYPTOFLOW_EXCHANGES__KRAKEN__ENABLED": "true",
        "CRYPTOFLOW_EXCHANGES__KRAKEN__WS_URL": f"{sim.ws_url}/v2",
        "CRYPTOFLOW_EXCHANGES__KRAKEN__REST_URL": sim.http_url,
        "CRYPTOFLOW_EXCHANGES__KRAKEN__SYMBOLS": "[" + ", ".join(s.replace("-", "/") for s in SYMBOLS) + "]",
    }


def us(ts: datetime) -> int:
    return int(ts.timestamp()) * 1_000_000 + ts.microsecond


def frame_ts_us(text: str) -> int:
    stamp = json.loads(text)["data"][0]["timestamp"]
    return us(datetime.fromisoformat(stamp.replace("Z", "+00:00")))


def breaks(stats: SimulatorStats) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
    """(symbol, exchange time of the last book frame its client received) for every connection the
    simulator broke (injected disconnect, ban) and, second, for every connection however it ended."""
    broken, ended = set(), set()
    for session in stats.sessions:
        for key, text in session.last.items():
            at = (key.removeprefix("book:").replace("/", "-"), frame_ts_us(text))
            ended.add(at)
            if session.ended_by in ("disconnect", "ban_drop"):
                broken.add(at)
    return broken, ended


def true_tops(market: SyntheticMarket, symbol: str, stamps: set[int]) -> dict[int, Top]:
    """The true top `DEPTH` of `symbol` after every change up to each stamp, in one pass over the history."""
    book = OrderBook(depth_cap=UNBOUNDED)
    book.load(*market.truth.initial[symbol])
    out: dict[int, Top] = {}
    pending = sorted(stamps)

    def take(until: int | None) -> None:
        while pending and (until is None or pending[0] < until):
            out[pending.pop(0)] = _top(book)

    for ch in market.truth.changes:
        take(ch.ts_us)
        if ch.symbol == symbol:
            book.apply(ch.bids, ch.asks)
    take(None)
    return out


def _top(book: OrderBook) -> Top:
    def side(levels):
        return [(Decimal(p), Decimal(q)) for p, q in levels.top(DEPTH)]

    return side(book.bids), side(book.asks)


def rebuild_and_check(market: SyntheticMarket, symbol: str, rows: list[dict]) -> tuple[list[int], list[str]]:
    """Replays `symbol`'s committed rows in stream order (snapshots replace the book, updates set levels,
    the book is cut to `DEPTH` after each message, as Kraken's view is); each snapshot, the book just
    before each resync and the final book must be the market's true top at that exchange time.
    Returns (source offsets of the snapshots, problems)."""
    problems: list[str] = []
    if len({r["shard"] for r in rows}) > 1:
        return [], [f"{symbol}: rows from several shards, no single stream order"]
    messages: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        messages[r["source_offset"]].append(r)
    order = sorted(messages)
    checks: list[tuple[int, int, str]] = []  # (message index, exchange time, what)
    snapshots: list[int] = []
    for i, offset in enumerate(order):
        if messages[offset][0]["is_snapshot"]:
            snapshots.append(offset)
            if i:
                checks.append((i - 1, us(messages[order[i - 1]][0]["exchange_ts"]), "before the resync"))
            checks.append((i, us(messages[offset][0]["exchange_ts"]), "snapshot"))
    if order:
        checks.append((len(order) - 1, us(messages[order[-1]][0]["exchange_ts"]), "at the end"))
    truth = true_tops(market, symbol, {ts for _, ts, _ in checks})
    due = defaultdict(list)
    for i, ts, what in checks:
        due[i].append((ts, what))
    bids: dict[Decimal, Decimal] = {}
    asks: dict[Decimal, Decimal] = {}
    for i, offset in enumerate(order):
        message = messages[offset]
        if message[0]["is_snapshot"]:
            bids, asks = {}, {}
        elif not snapshots or offset < snapshots[0]:
            problems.append(f"{symbol}: update at offset {offset} before any snapshot")
        apply_level_rows(bids, asks, message)
        bids = dict(sorted(bids.items(), reverse=True)[:DEPTH])
        asks = dict(sorted(asks.items())[:DEPTH])
        for ts, what in due.get(i, []):
            if (sorted(bids.items(), reverse=True), sorted(asks.items())) != truth[ts]:
                problems.append(f"{symbol}: book {what} at offset {offset} differs from the market")
    final = _top_of(market, symbol)
    if (sorted(bids.items(), reverse=True), sorted(asks.items())) != final:
        problems.append(f"{symbol}: final book differs from the market's")
    return snapshots, problems


def _top_of(market: SyntheticMarket, symbol: str) -> Top:
    return _top(market.books[symbol])
