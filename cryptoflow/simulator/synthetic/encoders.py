"""Protocol-valid frames for the synthetic market, one encoder per exchange protocol.

Each encoder turns `market.BookChange` / `Trade` / `Liquidation` / `Funding` into the exact frame text the
exchange would send, with the venue's continuity ids and checksums (exchange-protocols.md §1-§6):

* Binance spot: combined-stream `depthUpdate` with `U`/`u` (+1 per level change) and the REST snapshot body
  (`lastUpdateId`); `trade`.
* Binance USD-M: `depthUpdate` with `U`/`u`/`pu` (ids jump, the `pu` chain is unbroken), REST snapshot with
  `E`/`T`; `forceOrder` (order side: a liquidated long is a SELL), `markPriceUpdate` (funding).
* Bybit v5: `orderbook.{depth}.{symbol}` snapshot then deltas with `u` + 1; `publicTrade`; `allLiquidation`
  (`S` = position side, "Buy" = long liquidated); `tickers` (funding).
* OKX v5: `books` snapshot (`prevSeqId` -1) and updates chaining `prevSeqId` = last `seqId`, checksum real
  (CRC32 of the true book) or 0; `trades`, `liquidation-orders`, `funding-rate`.
* Coinbase Advanced Trade: `l2_data` and `market_trades` (maker side) with the connection-wide
  `sequence_num`: one `CoinbaseEncoder` per connection.
* Kraken v2: `book` with the CRC32 checksum over the exact text of the top 10 of the subscribed-depth view,
  numbers written as JSON numbers that keep their trailing zeros; `trade`. One `KrakenV2Encoder` per
  subscription (the depth is the subscription's).

Encoding is string formatting only (no JSON serializer on the hot path) so the simulator can drive load
tests at tens of thousands of frames per second.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from cryptoflow.simulator.synthetic.market import BookChange, Funding, Liquidation, SyntheticMarket, Trade
from operators.book.checksums import kraken_checksum, okx_checksum
from operators.book.levels import OrderBook


def rfc3339(ts_us: int) -> str:
    """Epoch µs -> `2026-08-09T21:05:48.483587Z`."""
    seconds, micros = divmod(ts_us, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"


def _pairs(levels: list[list[str]]) -> str:
    return "[" + ",".join(f'["{p}","{q}"]' for p, q in levels) + "]"


def concat(symbol: str) -> str:
    """`BTC-USDT` -> `BTCUSDT` (Binance, Bybit)."""
    return symbol.replace("-", "")


# ---------------------------------------------------------------------------------------------- Binance
class BinanceSpotEncoder:
    def __init__(self, market: SyntheticMarket, depth_stream: str = "depth@100ms", seed: int = 1) -> None:
        self.market, self.depth_stream = market, depth_stream
        rng = random.Random(seed)
        self.last_u = {s: rng.randint(10**9, 2 * 10**9) for s in market.symbols}

    def depth(self, ch: BookChange) -> str:
        first = self.last_u[ch.symbol] + 1
        last = first + len(ch.bids) + len(ch.asks) - 1
        self.last_u[ch.symbol] = last
        s = concat(ch.symbol)
        return (
            f'{{"stream":"{s.lower()}@{self.depth_stream}","data":{{"e":"depthUpdate","E":{ch.ts_us // 1000},'
            f'"s":"{s}","U":{first},"u":{last},"b":{_pairs(ch.bids)},"a":{_pairs(ch.asks)}}}}}'
        )

    def rest_depth(self, symbol: str, limit: int = 1000) -> bytes:
        bids, asks = self.market.snapshot(symbol, limit)
        return (
            f'{{"lastUpdateId":{self.last_u[symbol]},"bids":{_pairs(bids)},"asks":{_pairs(asks)}}}'.encode()
        )

    def trade(self, t: Trade) -> str:
        s = concat(t.symbol)
        ms = t.ts_us // 1000
        maker_buyer = "true" if t.taker_side == "sell" else "false"
        return (
            f'{{"stream":"{s.lower()}@trade","data":{{"e":"trade","E":{ms},"s":"{s}","t":{t.trade_id},'
            f'"p":"{t.price}","q":"{t.qty}","T":{ms},"m":{maker_buyer},"M":true}}}}'
        )


class BinanceUsdmEncoder:
    def __init__(self, market: SyntheticMarket, depth_stream: str = "depth@100ms", seed: int = 2) -> None:
        self.market, self.depth_stream = market, depth_stream
        self.rng = random.Random(seed)
        self.last_u = {s: self.rng.randint(10**11, 2 * 10**11) for s in market.symbols}

    def depth(self, ch: BookChange) -> str:
        prev = self.last_u[ch.symbol]
        first = prev + 1 + self.rng.randint(0, 50)  # USD-M ids jump; only the pu chain is exact
        last = first + len(ch.bids) + len(ch.asks) + self.rng.randint(0, 50)
        self.last_u[ch.symbol] = last
        s, ms = concat(ch.symbol), ch.ts_us // 1000
        return (
            f'{{"stream":"{s.lower()}@{self.depth_stream}","data":{{"e":"depthUpdate","E":{ms},"T":{ms},'
            f'"s":"{s}","U":{first},"u":{last},"pu":{prev},"b":{_pairs(ch.bids)},"a":{_pairs(ch.asks)}}}}}'
        )

    def rest_depth(self, symbol: str, limit: int = 1000) -> bytes:
        bids, asks = self.market.snapshot(symbol, limit)
        ms = self.market.now_us // 1000
        return (
            f'{{"lastUpdateId":{self.last_u[symbol]},"E":{ms},"T":{ms},'
            f'"bids":{_pairs(bids)},"asks":{_pairs(asks)}}}'
        ).encode()

    def force_order(self, liq: Liquidation) -> str:
        """The liquidation engine's order: a long position is closed by a SELL."""
        s, ms = concat(liq.symbol), liq.ts_us // 1000
        side = "SELL" if liq.position_side == "long" else "BUY"
        return (
            f'{{"stream":"{s.lower()}@forceOrder","data":{{"e":"forceOrder","E":{ms},"o":{{"s":"{s}",'
            f'"S":"{side}","o":"LIMIT","f":"IOC","q":"{liq.qty}","p":"{liq.price}","ap":"{liq.price}",'
            f'"X":"FILLED","l":"{liq.qty}","z":"{liq.qty}","T":{ms}}}}}}}'
        )

    def mark_price(self, f: Funding) -> str:
        s, ms = concat(f.symbol), f.ts_us // 1000
        return (
            f'{{"stream":"{s.lower()}@markPrice@1s","data":{{"e":"markPriceUpdate","E":{ms},"s":"{s}",'
            f'"p":"{f.mark_price}","i":"{f.mark_price}","P":"{f.mark_price}","r":"{f.rate}",'
            f'"T":{f.next_funding_us // 1000}}}}}'
        )

    def agg_trade(self, t: Trade) -> str:
        s, ms = concat(t.symbol), t.ts_us // 1000
        maker_buyer = "true" if t.taker_side == "sell" else "false"
        return (
            f'{{"stream":"{s.lower()}@aggTrade","data":{{"e":"aggTrade","E":{ms},"s":"{s}","a":{t.trade_id},'
            f'"p":"{t.price}","q":"{t.qty}","f":{t.trade_id},"l":{t.trade_id},"T":{ms},"m":{maker_buyer}}}}}'
        )


# ------------------------------------------------------------------------------------------------ Bybit
class BybitEncoder:
    def __init__(self, market: SyntheticMarket, depth: int = 50, seed: int = 3) -> None:
        self.market, self.depth = market, depth
        rng = random.Random(seed)
        self.last_u = {s: rng.randint(10**6, 10**7) for s in market.symbols}
        self.cross_seq = rng.randint(10**9, 2 * 10**9)

    def _book(self, kind: str, symbol: str, bids: list, asks: list, ts_us: int) -> str:
        if kind == "delta":  # a snapshot carries the `u` of the last delta, so every connection's chain holds
            self.last_u[symbol] += 1
        self.cross_seq += 1
        s, ms = concat(symbol), ts_us // 1000
        return (
            f'{{"topic":"orderbook.{self.depth}.{s}","type":"{kind}","ts":{ms},"data":{{"s":"{s}",'
            f'"b":{_pairs(bids)},"a":{_pairs(asks)},"u":{self.last_u[symbol]},"seq":{self.cross_seq}}},'
            f'"cts":{ms}}}'
        )

    def snapshot(self, symbol: str) -> str:
        bids, asks = self.market.snapshot(symbol)
        return self._book("snapshot", symbol, bids, asks, self.market.now_us)

    def delta(self, ch: BookChange) -> str:
        return self._book("delta", ch.symbol, ch.bids, ch.asks, ch.ts_us)

    def trade(self, t: Trade) -> str:
        s, ms = concat(t.symbol), t.ts_us // 1000
        side = "Buy" if t.taker_side == "buy" else "Sell"
        return (
            f'{{"topic":"publicTrade.{s}","type":"snapshot","ts":{ms},"data":[{{"T":{ms},"s":"{s}",'
            f'"S":"{side}","v":"{t.qty}","p":"{t.price}","L":"PlusTick","i":"{t.trade_id}","BT":false}}]}}'
        )

    def liquidation(self, liq: Liquidation) -> str:
        """`S` is the position side: "Buy" means a long position was liquidated."""
        s, ms = concat(liq.symbol), liq.ts_us // 1000
        side = "Buy" if liq.position_side == "long" else "Sell"
        return (
            f'{{"topic":"allLiquidation.{s}","type":"snapshot","ts":{ms},"data":[{{"T":{ms},"s":"{s}",'
            f'"S":"{side}","v":"{liq.qty}","p":"{liq.price}"}}]}}'
        )

    def ticker(self, f: Funding) -> str:
        s, ms = concat(f.symbol), f.ts_us // 1000
        self.cross_seq += 1
        return (
            f'{{"topic":"tickers.{s}","type":"snapshot","data":{{"symbol":"{s}","markPrice":"{f.mark_price}",'
            f'"indexPrice":"{f.mark_price}","fundingRate":"{f.rate}","nextFundingTime":"{f.next_funding_us // 1000}",'
            f'"fundingIntervalHour":"8"}},"cs":{self.cross_seq},"ts":{ms}}}'
        )


# -------------------------------------------------------------------------------------------------- OKX
def _okx_levels(levels: list[list[str]]) -> str:
    return "[" + ",".join(f'["{p}","{q}","0","1"]' for p, q in levels) + "]"


def okx_inst_type(inst_id: str) -> str:
    """`BTC-USDT-SWAP` -> SWAP, `BTC-USD-260925` -> FUTURES, `BTC-USDT` -> SPOT."""
    parts = inst_id.split("-")
    if parts[-1] == "SWAP":
        return "SWAP"
    return "FUTURES" if len(parts) == 3 and parts[2].isdigit() else "SPOT"


class OkxEncoder:
    """`inst_suffix` "" for spot books or when the market's symbols are instrument ids already, "-SWAP"
    for perps. `real_checksum=False` sends 0 like OKX in 2026. `net_mode_every` = n: every n-th
    liquidation is sent as a net-mode position (`posSide` "net"; only the closing order's `side` tells
    which position was liquidated), 0 = never."""

    def __init__(self, market: SyntheticMarket, inst_suffix: str = "", real_checksum: bool = True,
                 seed: int = 4, net_mode_every: int = 0) -> None:  # fmt: skip
        self.market, self.suffix, self.real_checksum = market, inst_suffix, real_checksum
        rng = random.Random(seed)
        self.last_seq = {s: rng.randint(10**9, 2 * 10**9) for s in market.symbols}
        self.net_mode_every, self.liquidations = net_mode_every, 0

    def inst_id(self, symbol: str) -> str:
        return symbol + self.suffix

    def _checksum(self, symbol: str) -> int:
        return okx_checksum(self.market.books[symbol]) if self.real_checksum else 0

    def _book(self, action: str, symbol: str, bids: list, asks: list, ts_us: int, prev: int) -> str:
        if action == "update":  # ids jump; a snapshot carries the current seqId (same on every connection)
            self.last_seq[symbol] += 1 + (prev % 3)
        seq = self.last_seq[symbol]
        return (
            f'{{"arg":{{"channel":"books","instId":"{self.inst_id(symbol)}"}},"action":"{action}",'
            f'"data":[{{"asks":{_okx_levels(asks)},"bids":{_okx_levels(bids)},"ts":"{ts_us // 1000}",'
            f'"checksum":{self._checksum(symbol)},"prevSeqId":{prev},"seqId":{seq}}}]}}'
        )

    def snapshot(self, symbol: str) -> str:
        bids, asks = self.market.snapshot(symbol, 400)
        return self._book("snapshot", symbol, bids, asks, self.market.now_us, -1)

    def update(self, ch: BookChange) -> str:
        return self._book("update", ch.symbol, ch.bids, ch.asks, ch.ts_us, self.last_seq[ch.symbol])

    def trade(self, t: Trade) -> str:
        inst = self.inst_id(t.symbol)
        return (
            f'{{"arg":{{"channel":"trades","instId":"{inst}"}},"data":[{{"instId":"{inst}",'
            f'"tradeId":"{t.trade_id}","px":"{t.price}","sz":"{t.qty}","side":"{t.taker_side}",'
            f'"ts":"{t.ts_us // 1000}","count":"1"}}]}}'
        )

    def liquidation(self, liq: Liquidation) -> str:
        """`posSide` is the liquidated position (or "net" in net mode); `side` the order that closed it
        (a long is closed by a sell)."""
        inst = self.inst_id(liq.symbol)
        kind, uly = okx_inst_type(inst), "-".join(inst.split("-")[:2])
        side = "sell" if liq.position_side == "long" else "buy"
        self.liquidations += 1
        net = self.net_mode_every and self.liquidations % self.net_mode_every == 0
        pos_side = "net" if net else liq.position_side
        return (
            f'{{"arg":{{"channel":"liquidation-orders","instType":"{kind}"}},"data":[{{"instType":"{kind}",'
            f'"instId":"{inst}","uly":"{uly}","details":[{{"side":"{side}",'
            f'"posSide":"{pos_side}","bkPx":"{liq.price}","sz":"{liq.qty}","bkLoss":"0",'
            f'"ccy":"","ts":"{liq.ts_us // 1000}"}}]}}]}}'
        )

    def funding(self, f: Funding) -> str:
        inst = self.inst_id(f.symbol)
        nxt = f.next_funding_us // 1000
        return (
            f'{{"arg":{{"channel":"funding-rate","instId":"{inst}"}},"data":[{{"instType":"SWAP",'
            f'"instId":"{inst}","method":"current_period","fundingRate":"{f.rate}","fundingTime":"{nxt}",'
            f'"nextFundingTime":"{nxt + 28_800_000}","ts":"{f.ts_us // 1000}"}}]}}'
        )


# --------------------------------------------------------------------------------------------- Coinbase
class CoinbaseEncoder:
    """One per connection: `sequence_num` counts every message sent on it, across channels."""

    def __init__(self, market: SyntheticMarket) -> None:
        self.market = market
        self.seq = -1

    def _envelope(self, channel: str, ts_us: int, events: str) -> str:
        self.seq += 1
        return (
            f'{{"channel":"{channel}","client_id":"","timestamp":"{rfc3339(ts_us)}",'
            f'"sequence_num":{self.seq},"events":{events}}}'
        )

    @staticmethod
    def _updates(ts: str, bids: list, asks: list) -> str:
        parts = [
            f'{{"side":"bid","event_time":"{ts}","price_level":"{p}","new_quantity":"{q}"}}' for p, q in bids
        ]
        parts += [
            f'{{"side":"offer","event_time":"{ts}","price_level":"{p}","new_quantity":"{q}"}}'
            for p, q in asks
        ]
        return "[" + ",".join(parts) + "]"

    def snapshot(self, symbol: str) -> str:
        bids, asks = self.market.snapshot(symbol)
        ts = self.market.now_us
        ups = self._updates(rfc3339(ts), bids, asks)
        return self._envelope(
            "l2_data", ts, f'[{{"type":"snapshot","product_id":"{symbol}","updates":{ups}}}]'
        )

    def update(self, ch: BookChange) -> str:
        ups = self._updates(rfc3339(ch.ts_us), ch.bids, ch.asks)
        return self._envelope(
            "l2_data", ch.ts_us, f'[{{"type":"update","product_id":"{ch.symbol}","updates":{ups}}}]'
        )

    def trade(self, t: Trade) -> str:
        maker = "SELL" if t.taker_side == "buy" else "BUY"  # Coinbase reports the maker side
        return self._envelope(
            "market_trades", t.ts_us,
            f'[{{"type":"update","trades":[{{"trade_id":"{t.trade_id}","product_id":"{t.symbol}",'
            f'"price":"{t.price}","size":"{t.qty}","side":"{maker}","time":"{rfc3339(t.ts_us)}"}}]}}]',
        )  # fmt: skip

    def heartbeat(self, counter: int) -> str:
        ts = self.market.now_us
        return self._envelope(
            "heartbeats", ts, f'[{{"current_time":"{rfc3339(ts)}","heartbeat_counter":{counter}}}]'
        )

    def subscriptions(self, subscribed: dict[str, list[str]]) -> str:
        body = ",".join(f'"{c}":[' + ",".join(f'"{p}"' for p in ps) + "]" for c, ps in subscribed.items())
        return self._envelope("subscriptions", self.market.now_us, f'[{{"subscriptions":{{{body}}}}}]')


# ----------------------------------------------------------------------------------------------- Kraken
def kraken_symbol(symbol: str) -> str:
    return symbol.replace("-", "/")


class KrakenV2Encoder:
    """One per `book` subscription: keeps the `depth`-level view the subscriber holds, sends what changed
    in it (including levels moving back into scope after a delete; never deletes for levels pushed out,
    as Kraken does) and the checksum of that view."""

    def __init__(self, market: SyntheticMarket, depth: int = 10) -> None:
        self.market, self.depth = market, depth
        self.views: dict[str, OrderBook] = {}

    @staticmethod
    def _levels(levels: list[list[str]]) -> str:
        return "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels) + "]"

    def _frame(self, kind: str, symbol: str, bids: list, asks: list, checksum: int, ts_us: int) -> str:
        return (
            f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{kraken_symbol(symbol)}",'
            f'"bids":{self._levels(bids)},"asks":{self._levels(asks)},"checksum":{checksum},'
            f'"timestamp":"{rfc3339(ts_us)}"}}]}}'
        )

    def snapshot(self, symbol: str) -> str:
        bids, asks = self.market.snapshot(symbol, self.depth)
        view = self.views[symbol] = OrderBook(depth_cap=1 << 30)
        view.load(bids, asks)
        return self._frame("snapshot", symbol, bids, asks, kraken_checksum(view), self.market.now_us)

    def update(self, ch: BookChange) -> str | None:
        """The frame for a change already applied to the true book; None if the view did not change."""
        view = self.views.get(ch.symbol)
        if view is None:
            return None
        true_book = self.market.books[ch.symbol]
        out = []
        zero = self.market.qty_text(0)
        for view_side, true_side in ((view.bids, true_book.bids), (view.asks, true_book.asks)):
            new_top = true_side.top(self.depth)
            changed = [[p, q] for p, q in new_top if view_side.get(p) != q]
            if changed or len(new_top) != len(view_side):
                new_prices = {p for p, _ in new_top}
                for p, _ in view_side.top(len(view_side)):
                    if p not in new_prices and p not in true_side:  # deleted (not merely pushed out)
                        changed.append([p, zero])
                for p, q in changed:
                    view_side.set(p, q)
                view_side.truncate(self.depth, remember=False)
            out.append(changed)
        if not out[0] and not out[1]:
            return None
        return self._frame("update", ch.symbol, out[0], out[1], kraken_checksum(view), ch.ts_us)

    def trade(self, t: Trade) -> str:
        return self.trade_frame(t)

    @staticmethod
    def trade_frame(t: Trade) -> str:
        return (
            f'{{"channel":"trade","type":"update","data":[{{"symbol":"{kraken_symbol(t.symbol)}",'
            f'"side":"{t.taker_side}","price":{t.price},"qty":{t.qty},"ord_type":"market",'
            f'"trade_id":{t.trade_id},"timestamp":"{rfc3339(t.ts_us)}"}}]}}'
        )
