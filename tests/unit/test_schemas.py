from decimal import Decimal

from cryptoflow.model import LevelBatch, TradeRow
from cryptoflow.schemas import TABLES


def batch(prices, qtys, sides, snapshot=False, offset=1):
    return LevelBatch("binance", "spot", "NKN-USDT", "NKNUSDT", 1_000_000, 2_000_000, 10, 9, None, snapshot, 2,
                      offset, sides, prices, qtys)  # fmt: skip


def test_level_batches_expand_to_exact_decimals():
    table = TABLES["spot_delta"].to_arrow(
        [batch(["0.35130000", "0.00000001"], ["6195.00000000", "0"], ["bid", "ask"]), batch([], [], [])]
    )
    assert table.num_rows == 2
    rows = table.to_pylist()
    assert rows[0]["price"] == Decimal("0.35130000") and rows[1]["price"] == Decimal("0.00000001")
    assert rows[1]["qty"] == Decimal("0") and rows[0]["side"] == "bid" and rows[1]["side"] == "ask"
    assert rows[0]["exchange_ts"].timestamp() == 1.0 and rows[0]["prev_seq"] is None
    assert table.schema == TABLES["spot_delta"].arrow_schema


def test_trades_to_arrow():
    row = TradeRow("binance", "spot", "NKN-USDT", "NKNUSDT", 5, 6, "42", "1.10", "2.5", "buy", 0, 3)
    table = TABLES["ticks"].to_arrow([row])
    out = table.to_pylist()[0]
    assert out["trade_id"] == "42" and out["price"] == Decimal("1.10") and out["source_offset"] == 3
