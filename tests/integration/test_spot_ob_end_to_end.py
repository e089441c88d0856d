"""`dataflows.spot_ob` end to end over real sockets: every `spot_ob` row must equal the reference book
(built from the recording with the standard library) at the row's update id, and nothing lands in `gaps`
for a contiguous recording."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pyiceberg.exceptions import NoSuchTableError

from tests.integration.test_binance_spot_end_to_end import env, read, run_flow  # noqa: F401  (fixture)
from tests.support import book_truth as truth

pytestmark = pytest.mark.integration


def test_spot_ob_rows_equal_the_reference_book(env):  # noqa: F811
    run_flow("spot_ob", env)
    rows = read(env, "spot_ob")
    expected = truth.binance_applied_counts(truth.BINANCE_SPOT)
    assert {r["exchange_symbol"] for r in rows} == set(expected)
    streams = {s: truth.binance_stream(truth.BINANCE_SPOT, s, usdm=False) for s in expected}
    for row in rows:
        ref = streams[row["exchange_symbol"]].at_id(row["seq"])
        bids = [(lv["price"], lv["qty"]) for lv in row["bids"]]
        asks = [(lv["price"], lv["qty"]) for lv in row["asks"]]
        assert bids == ref.top_bids(len(bids)) and asks == ref.top_asks(len(asks))
        if row["is_checkpoint"]:
            assert len(bids) == len(ref.bids) and len(asks) == len(ref.asks)
        else:
            assert len(bids) == min(50, len(ref.bids))
        assert row["best_bid"] == bids[0][0] and row["best_ask"] == asks[0][0]
        assert row["mid"] == (bids[0][0] + asks[0][0]) / 2 and row["spread"] == asks[0][0] - bids[0][0]
        assert row["best_bid"] < row["best_ask"]
    # bookTicker cross-checks happened and vouch for the rows after them
    assert any(r["verified"] for r in rows)
    # at most one row per 100 ms bucket of event time per symbol, at least one full checkpoint each
    for symbol in expected:
        mine = [r for r in rows if r["exchange_symbol"] == symbol]
        buckets = [int(r["exchange_ts"].timestamp() * 1000) // 100 for r in mine]
        assert len(set(buckets)) == len(buckets)
        assert any(r["is_checkpoint"] for r in mine)
    try:
        gaps = read(env, "gaps")
    except NoSuchTableError:  # the sink creates the table with its first row
        gaps = []
    assert gaps == []
    assert all(isinstance(r["mid"], Decimal) for r in rows)
