"""How fast the synthetic market makes protocol frames (book change + encoding), per protocol, for a
load-test sized market (default 1,000 symbols x 50 levels). This is the ceiling of what the simulator's
synthetic mode can feed a client from one core, before socket writes.

Run: python -m benchmarks.bench_synthetic [--symbols 1000] [--frames 50000]
"""

from __future__ import annotations

import argparse
import time

from cryptoflow.simulator.synthetic import encoders as enc
from cryptoflow.simulator.synthetic.market import SyntheticMarket


def _encoder(protocol: str, market: SyntheticMarket):
    if protocol == "binance_spot":
        return enc.BinanceSpotEncoder(market).depth
    if protocol == "binance_usdm":
        return enc.BinanceUsdmEncoder(market).depth
    if protocol == "bybit":
        return enc.BybitEncoder(market).delta
    if protocol == "okx":
        return enc.OkxEncoder(market, "-SWAP", real_checksum=False).update
    if protocol == "okx_checksum":
        return enc.OkxEncoder(market, "-SWAP", real_checksum=True).update
    if protocol == "coinbase":
        return enc.CoinbaseEncoder(market).update
    e = enc.KrakenV2Encoder(market, 10)
    for s in market.symbols:
        e.snapshot(s)
    return e.update


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--frames", type=int, default=50_000)
    args = parser.parse_args()
    symbols = [f"S{i:04d}-USDT" for i in range(args.symbols)]
    print(f"{args.symbols} symbols x {args.depth} levels, {args.frames} frames per protocol")
    for protocol in ("binance_spot", "binance_usdm", "bybit", "okx", "okx_checksum", "coinbase", "kraken_v2"):
        market = SyntheticMarket(symbols, depth=args.depth, seed=1, keep_truth=False)
        encode = _encoder(protocol, market)
        start = time.perf_counter()
        size = 0
        for _ in range(args.frames):
            frame = encode(market.next_change())
            size += len(frame) if frame else 0
        elapsed = time.perf_counter() - start
        print(f"  {protocol:<13} {args.frames / elapsed:>9,.0f} frames/s  {size / args.frames:>6.0f} B/frame")


if __name__ == "__main__":
    main()
