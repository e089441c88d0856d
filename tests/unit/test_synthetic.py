"""The synthetic mode: for each of the six protocols, the generated session replayed through the real
parsers and book engine (`cryptoflow.verify.replay`) verifies clean and ends with the market's true
book; dropping one book frame is detected as a gap (or checksum mismatch). Liquidation and funding
frames carry exactly the truth, with each venue's side convention, checked with json only."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from connectors.kraken.parsing import KrakenV2Parser
from connectors.recordings.records import Record
from cryptoflow.simulator.synthetic import encoders as enc
from cryptoflow.simulator.synthetic.market import SyntheticMarket
from cryptoflow.simulator.synthetic.streams import PROTOCOLS, session
from cryptoflow.verify import ok, replay
from operators.book.checksums import kraken_checksum
from operators.book.tracker import BookSettings

SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]


def _market(seed: int = 5) -> SyntheticMarket:
    return SyntheticMarket(SYMBOLS, depth=30, seed=seed)


def _exchange_symbol(protocol: str, symbol: str) -> str:
    return {
        "binance_spot": enc.concat(symbol), "binance_usdm": enc.concat(symbol), "bybit": enc.concat(symbol) + "-PERP",
        "okx": symbol + "-SWAP", "coinbase": symbol, "kraken_v2": symbol.replace("-", "/"),
    }[protocol]  # fmt: skip


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_generated_session_verifies_clean_and_matches_the_truth(protocol):
    market = _market()
    result = replay(iter(session(protocol, market, 1500)), BookSettings(emit=False, depth_cap=100_000))
    report = result.report()
    assert ok(report), report
    assert len(report["symbols"]) == len(SYMBOLS)
    applied = sum(s["applied"] for s in report["symbols"].values())
    assert applied >= (900 if protocol == "kraken_v2" else 1400)  # Kraken sends only changes in its view
    for symbol in SYMBOLS:
        label = next(k for k in result.trackers if k.endswith(":" + _exchange_symbol(protocol, symbol)))
        book, truth = result.trackers[label].book, market.books[symbol]
        n = 10 if protocol == "kraken_v2" else 100_000
        assert book.bids.top(n) == truth.bids.top(n) and book.asks.top(n) == truth.asks.top(n)
    if protocol in ("okx", "kraken_v2"):
        checks = [s["checks"]["checksum"] for s in report["symbols"].values()]
        assert sum(c["match"] for c in checks) > 900 and all(c["mismatch"] == 0 for c in checks)


def _drop_one_book_frame(records: list[Record]) -> list[Record]:
    recv = [i for i, r in enumerate(records) if r.kind == "recv"]
    victim = recv[len(recv) // 2]
    return records[:victim] + records[victim + 1 :]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_lost_frame_is_detected(protocol):
    records = _drop_one_book_frame(session(protocol, _market(), 1500))
    report = replay(iter(records)).report()
    assert not ok(report)
    gaps = sum(s["gaps"] for s in report["symbols"].values())
    if protocol == "coinbase":
        assert gaps == len(SYMBOLS)  # the connection-wide counter invalidates every book on it
    elif protocol == "kraken_v2":
        assert sum(s["checks"]["checksum"]["mismatch"] for s in report["symbols"].values()) == 1 == gaps
    else:
        assert gaps == 1


def test_same_seed_same_stream_and_trailing_zeros_kept():
    a = session("kraken_v2", _market(9), 200)
    b = session("kraken_v2", _market(9), 200)
    assert [r.data for r in a] == [r.data for r in b]
    # qty has 8 decimals, so trailing zeros are everywhere in the JSON numbers Kraken sends
    assert re.search(r'"qty":\d+\.\d*0[,}]', a[1].data)


def test_kraken_checksum_is_over_the_literal_text():
    market = _market()
    encoder = enc.KrakenV2Encoder(market, 10)
    text = encoder.snapshot("BTC-USDT")
    (event,) = KrakenV2Parser(10).parse(text, 0)
    bids, asks = market.snapshot("BTC-USDT", 10)
    assert event.payload == (bids, asks)  # the parser gets the literal text back, trailing zeros included
    assert (
        event.checksum
        == kraken_checksum(encoder.views["BTC-USDT"])
        == kraken_checksum(market.books["BTC-USDT"])
    )


def test_liquidation_frames_carry_the_truth_with_each_venues_side_convention():
    market = _market()
    usdm, bybit, okx = (
        enc.BinanceUsdmEncoder(market),
        enc.BybitEncoder(market),
        enc.OkxEncoder(market, "-SWAP"),
    )
    for _ in range(50):
        liq = market.next_liquidation()
        b = json.loads(usdm.force_order(liq))["data"]["o"]
        assert (b["s"], b["p"], b["q"]) == (enc.concat(liq.symbol), liq.price, liq.qty)
        assert b["S"] == ("SELL" if liq.position_side == "long" else "BUY")  # the order that closed it
        y = json.loads(bybit.liquidation(liq))["data"][0]
        assert y["S"] == ("Buy" if liq.position_side == "long" else "Sell")  # Bybit: the position's side
        assert (y["p"], y["v"]) == (liq.price, liq.qty)
        o = json.loads(okx.liquidation(liq))["data"][0]
        assert o["instId"] == liq.symbol + "-SWAP"
        assert o["details"][0]["posSide"] == liq.position_side and o["details"][0]["sz"] == liq.qty
    assert len(market.truth.liquidations) == 50
    assert {liq.position_side for liq in market.truth.liquidations} == {"long", "short"}


def test_funding_frames_carry_the_truth():
    market = _market()
    usdm, bybit, okx = (
        enc.BinanceUsdmEncoder(market),
        enc.BybitEncoder(market),
        enc.OkxEncoder(market, "-SWAP"),
    )
    for _ in range(20):
        f = market.next_funding()
        m = json.loads(usdm.mark_price(f))["data"]
        assert (m["r"], m["p"], m["T"]) == (f.rate, f.mark_price, f.next_funding_us // 1000)
        t = json.loads(bybit.ticker(f))["data"]
        assert (t["fundingRate"], t["markPrice"], int(t["nextFundingTime"])) == (f.rate, f.mark_price,
                                                                                 f.next_funding_us // 1000)  # fmt: skip
        o = json.loads(okx.funding(f))["data"][0]
        assert (o["fundingRate"], int(o["fundingTime"])) == (f.rate, f.next_funding_us // 1000)
    assert len(market.truth.funding) == 20


def test_book_at_rebuilds_the_truth_at_any_time():
    market = _market()
    changes = [market.next_change() for _ in range(300)]
    mid = changes[150]
    rebuilt = market.book_at(mid.symbol, mid.ts_us)
    replayed = SyntheticMarket(SYMBOLS, depth=30, seed=5)
    for _ in range(151):
        replayed.next_change()
    assert rebuilt.bids.top(1000) == replayed.books[mid.symbol].bids.top(1000)
    assert rebuilt.asks.top(1000) == replayed.books[mid.symbol].asks.top(1000)
    assert not market.books[mid.symbol].crossed()


def test_feed_broadcasts_every_event_kind_and_the_truth_records_them():
    import asyncio

    from cryptoflow.simulator.synthetic.feed import FeedPlan, SyntheticFeed
    from cryptoflow.simulator.synthetic.market import BookChange, Funding, Liquidation, Trade

    market = _market()
    feed = SyntheticFeed(market, FeedPlan(messages=300, trade_every=4, liquidation_every=7, funding_every=50,
                                          start_after_s=0))  # fmt: skip
    got: list = []
    ended = []

    async def collect(event):
        got.append(event)

    async def end():
        ended.append(True)

    async def main():
        feed.subscribers.append(collect)
        feed.start(end)
        await feed.task

    asyncio.run(main())
    assert ended == [True] and feed.changes_sent == 300
    assert sum(isinstance(e, BookChange) for e in got) == 300
    assert [e for e in got if isinstance(e, Trade)] == market.truth.trades and len(market.truth.trades) == 75
    assert [e for e in got if isinstance(e, Liquidation)] == market.truth.liquidations
    assert len(market.truth.liquidations) == 43
    assert [e for e in got if isinstance(e, Funding)] == market.truth.funding and len(
        market.truth.funding
    ) == 6


def test_feed_gives_liquidations_and_funding_to_the_listed_symbols_in_turn():
    import asyncio

    from cryptoflow.simulator.synthetic.feed import FeedPlan, SyntheticFeed

    market = _market()
    plan = FeedPlan(messages=120, trade_every=0, liquidation_every=4, funding_every=10, start_after_s=0,
                    liquidation_symbols=("ETH-USDT", "SOL-USDT"), funding_symbols=())  # fmt: skip
    feed = SyntheticFeed(market, plan)

    async def main():
        async def end():
            return None

        feed.start(end)
        await feed.task

    asyncio.run(main())
    liqs = [liq.symbol for liq in market.truth.liquidations]
    assert liqs == ["ETH-USDT", "SOL-USDT"] * 15  # 30 = one per 4 of 120 changes, alternating
    assert market.truth.funding == []  # an empty list: no symbol has funding


def test_snapshots_carry_the_current_id_so_a_second_subscriber_breaks_no_chain():
    market = _market()
    bybit, okx = enc.BybitEncoder(market), enc.OkxEncoder(market, "-SWAP")
    first = [json.loads(bybit.snapshot("BTC-USDT"))["data"]["u"]]
    first_okx = [json.loads(okx.snapshot("BTC-USDT"))["data"][0]["seqId"]]
    for i in range(30):
        ch = market.next_change("BTC-USDT")
        first.append(json.loads(bybit.delta(ch))["data"]["u"])
        first_okx.append(json.loads(okx.update(ch))["data"][0])
        if i == 10:  # another connection subscribes mid-stream
            late = json.loads(bybit.snapshot("BTC-USDT"))["data"]["u"]
            late_okx = json.loads(okx.snapshot("BTC-USDT"))["data"][0]
            assert late == first[-1] and late_okx["seqId"] == first_okx[-1]["seqId"]
            assert late_okx["prevSeqId"] == -1
    assert first == list(range(first[0], first[0] + 31))  # Bybit: u + 1 per delta, unbroken
    chain = first_okx[1:]
    assert chain[0]["prevSeqId"] == first_okx[0]
    assert all(b["prevSeqId"] == a["seqId"] for a, b in itertools.pairwise(chain))


def test_simulate_synthetic_flag_serves_bybit_and_okx_from_the_market():
    from cryptoflow.simulator.synthetic_venues import BybitSyntheticVenue, OkxSyntheticVenue
    from cryptoflow.simulator.venues import OPTIONED, SYNTHETIC, synthetic_symbols

    assert synthetic_symbols("okx", 4) == ["S0000-USDT", "S0001-USDT-SWAP", "S0002-USD-261225", "S0003-USDT"]
    assert synthetic_symbols("bybit", 2) == ["S0000-USDT", "S0001-USDT"]
    bybit = OPTIONED[SYNTHETIC["bybit"]](symbols=3, depth=5, messages=10)
    okx_venue = OPTIONED[SYNTHETIC["okx"]](symbols=3, depth=5, messages=10)
    assert isinstance(bybit, BybitSyntheticVenue) and isinstance(okx_venue, OkxSyntheticVenue)
    assert bybit.frames_for("/v5/public/linear") == [] and bybit.frames_for("/v5/public/spot") == []
    body = json.loads(bybit.rest("/v5/market/instruments-info?category=linear").body)
    assert [(i["symbol"], i["baseCoin"], i["contractType"]) for i in body["result"]["list"]] == [
        (f"S000{i}USDT", f"S000{i}", "LinearPerpetual") for i in range(3)
    ]
    swaps = json.loads(okx_venue.rest("/api/v5/public/instruments?instType=SWAP").body)
    assert [i["instId"] for i in swaps["data"]] == ["S0001-USDT-SWAP"]


def test_feed_with_start_when_waits_for_its_subscribers_and_misses_nothing_of_the_late_one():
    """`start_when`: the market starts only once the second subscriber is in, so it sees every change,
    even though the plan would wait far longer (`start_after_s` is only the limit)."""
    import asyncio

    from cryptoflow.simulator.synthetic.feed import FeedPlan, SyntheticFeed

    market = _market()
    subscribers: list = []
    plan = FeedPlan(messages=50, trade_every=0, start_after_s=60, start_when=lambda: len(subscribers) == 2)
    feed = SyntheticFeed(market, plan)
    first: list = []
    late: list = []
    sent_when_late_joined: list[int] = []

    async def main():
        async def end():
            return None

        async def on_first(event):
            first.append(event)

        async def on_late(event):
            late.append(event)

        subscribers.append(on_first)
        feed.subscribers.append(on_first)
        feed.start(end)
        for _ in range(5):
            await asyncio.sleep(0.03)  # the feed polls `start_when` meanwhile and must not start
        sent_when_late_joined.append(feed.changes_sent)
        subscribers.append(on_late)
        feed.subscribers.append(on_late)
        await asyncio.wait_for(feed.task, 30)  # well before the 60 s limit

    asyncio.run(main())
    assert sent_when_late_joined == [0]
    assert first == late and len(late) == 50 == feed.changes_sent


def test_feed_that_fails_before_its_first_change_still_ends_the_replay():
    """A failing `start_when` (or anything before the first change) still runs `on_end`: the venue closes
    every connection with end-of-replay instead of leaving its clients waiting forever."""
    import asyncio

    from cryptoflow.simulator.synthetic.feed import FeedPlan, SyntheticFeed

    def broken() -> bool:
        raise RuntimeError("broken start condition")

    feed = SyntheticFeed(_market(), FeedPlan(messages=10, start_after_s=5, start_when=broken))
    ended: list[bool] = []

    async def main():
        async def end():
            ended.append(True)

        feed.start(end)
        with pytest.raises(RuntimeError, match="broken start condition"):
            await feed.task

    asyncio.run(main())
    assert ended == [True] and feed.changes_sent == 0
