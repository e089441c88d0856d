"""The `cryptoflow` command."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from cryptoflow.config import ConfigError
from cryptoflow.logs import setup_logging


def _demo(args: argparse.Namespace) -> int:
    from cryptoflow.demo import run_demo

    return run_demo(Path(args.warehouse), speed=args.speed, workers=args.workers, keep=args.keep)


def _simulate(args: argparse.Namespace) -> int:
    from connectors.recordings.records import RecordingFormatError
    from cryptoflow.simulator.venues import start_capture_venues, start_venues

    names = [n.strip() for n in (args.venues or "").split(",") if n.strip()]
    try:
        if args.capture:
            sims = start_capture_venues(
                Path(args.capture), args.host, args.port, args.speed, args.clock, names
            )
        else:
            names = names or ["binance", "binance-usdm"]
            sims = start_venues(names, args.host, args.port, args.speed, args.clock, synthetic=vars(args))
    except (ValueError, RecordingFormatError) as exc:
        print(f"cryptoflow: {exc}")
        return 2
    for name, sim in sims.items():
        print(f"{name} simulator: WebSocket {sim.ws_url}  REST {sim.http_url}")
    what = "joins one shared timeline" if args.clock == "shared" else "replays its recording once"
    print(f"Each connection {what}, then closes with code 4100. Ctrl-C stops.")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        for sim in sims.values():
            sim.stop()
    return 0


def _capture(args: argparse.Namespace) -> int:
    from cryptoflow.capture import CHANNELS, run_capture
    from cryptoflow.config import load_settings

    channels = {CHANNELS[c] for c in args.channels.split(",") if c}
    venues = [v for v in args.venues.split(",") if v] if args.venues else None
    return run_capture(load_settings(), Path(args.out), channels, args.duration, venues)


def _channels(value: str) -> str:
    names = ("depth", "trades", "bookTicker", "liquidations", "funding")  # cryptoflow.capture.CHANNELS
    unknown = set(value.split(",")) - set(names)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown channel(s) {sorted(unknown)}; use {','.join(names)}")
    return value


def _venues(value: str) -> str:
    names = ("binance", "binance-usdm", "bybit", "okx", "coinbase", "kraken")  # cryptoflow.capture.VENUES
    unknown = set(value.split(",")) - set(names)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown venue(s) {sorted(unknown)}; use {','.join(names)}")
    return value


def _host_stalls(args: argparse.Namespace) -> int:
    import orjson

    from cryptoflow.hostmeter import format_text, measure

    if not args.json:
        print(
            f"measuring this machine's CPUs for {args.seconds:g} s (a meter process per CPU, ~1 % of a core each)"
        )
    report = measure(args.seconds, progress=not args.json)
    print(orjson.dumps(report).decode() if args.json else format_text(report))
    return 0


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {value}")
    return seconds


def _init_recovery(args: argparse.Namespace) -> int:
    from cryptoflow.runtime import ensure_recovery_store

    created = ensure_recovery_store(args.dir, args.partitions)
    print(f"{args.dir}: {'created' if created else 'already initialised, left as is'}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    import orjson

    from connectors.recordings.records import RecordingFormatError
    from cryptoflow.verify import format_text, ok, verify_paths

    paths = [Path(p) for p in args.captures]
    missing = [str(p) for p in paths if not p.exists()]  # a `cryptoflow capture` output is a directory
    if missing:
        print(f"cryptoflow: no such recording: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        report = verify_paths(paths).report()
    except RecordingFormatError as exc:
        print(f"cryptoflow: {exc}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
    else:
        print(format_text(report))
    return 0 if ok(report) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cryptoflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="replay real captures through the dataflows into a local Iceberg warehouse"
    )
    demo.add_argument(
        "--warehouse", default="warehouse", help="local warehouse directory (default ./warehouse)"
    )
    demo.add_argument(
        "--speed", type=float, default=0.0, help="replay speed: 0 = as fast as possible, 1 = recorded"
    )
    demo.add_argument("--workers", type=int, default=1, help="Bytewax worker threads per flow (-w)")
    demo.add_argument(
        "--keep", action="store_true", help="append to the demo tables instead of recreating them"
    )
    demo.set_defaults(func=_demo)

    verify = sub.add_parser(
        "verify",
        help="replay recordings through sequencers and books; report applied, gaps, checks per book",
        description="Replay recordings (cryptofeed v1/v3, CryptoFlow captures) through the sequencers and "
        "the book engine. Exit status 0 when every book synced with no gap, crossed book or failed check.",
    )
    verify.add_argument(
        "captures",
        nargs="+",
        metavar="CAPTURE",
        help="recording files or `cryptoflow capture` directories (merged by receive time)",
    )
    verify.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    verify.set_defaults(func=_verify)

    sim = sub.add_parser(
        "simulate", help="run the local exchange simulator: each venue on its own port from --port"
    )
    synth = "synthetic venues (kraken, bybit-synthetic, okx-synthetic)"
    sim.add_argument("--symbols", type=int, default=10, help=f"{synth}: symbols")
    sim.add_argument("--depth", type=int, default=50, help=f"{synth}: true book levels per side")
    sim.add_argument("--messages", type=int, default=100_000, help=f"{synth}: book changes before the end")
    sim.add_argument("--rate", type=float, default=1000.0, help=f"{synth}: book changes per second (0 = max)")
    sim.add_argument("--seed", type=int, default=0, help=f"{synth}: random seed")
    sim.add_argument(
        "--synthetic", action="store_true",
        help="serve bybit and okx from the synthetic market instead of their recordings (books, trades, "
        "liquidations, funding; symbols S0000-USDT..., OKX ids S0000-USDT, S0001-USDT-SWAP, S0002-USD-261225)",
    )  # fmt: skip
    sim.add_argument(
        "--wall-clock", action="store_true",
        help="kraken: exchange timestamps are the real time each message is made (latency benchmarks)",
    )  # fmt: skip
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=9443)
    sim.add_argument("--speed", type=float, default=1.0, help="0 = as fast as possible, 1 = recorded speed")
    sim.add_argument(
        "--clock", choices=("per_connection", "shared"), default="per_connection",
        help="shared: one live-like timeline that later connections join (needs --speed > 0)",
    )  # fmt: skip
    sim.add_argument(
        "--venues", default=None,
        help="comma-separated: binance, binance-usdm, bybit, bybit-v1, bybit-synthetic, okx, okx-synthetic, "
        "coinbase, kraken (consecutive ports from --port; default binance,binance-usdm, with --capture "
        "every venue in the capture)",
    )  # fmt: skip
    sim.add_argument(
        "--capture", default=None, metavar="DIR",
        help="serve a `cryptoflow capture --out DIR` directory instead of the bundled recordings: each "
        "venue in it (binance, binance-usdm, bybit, okx, coinbase, kraken v2) on its own port",
    )  # fmt: skip
    sim.set_defaults(func=_simulate)

    cap = sub.add_parser(
        "capture", help="record raw exchange data into journal segments (replayable with journal.replay_dir)"
    )
    cap.add_argument(
        "--out",
        required=True,
        help="directory; <source>/<shard> sub-directories (binance_spot/shard-00003, okx/shard-00001)",
    )
    cap.add_argument(
        "--channels",
        default="depth,trades",
        help="comma-separated of depth,trades,bookTicker,liquidations,funding (default depth,trades)",
        type=_channels,
    )
    cap.add_argument(
        "--venues", default=None, type=_venues,
        help="comma-separated of binance,binance-usdm,bybit,okx,coinbase,kraken (default: every enabled "
        "venue with symbols)",
    )  # fmt: skip
    cap.add_argument("--duration", type=float, default=None, help="seconds (default: until Ctrl-C)")
    cap.set_defaults(func=_capture)

    stalls = sub.add_parser(
        "host-stalls",
        help="measure whether the host takes this machine's CPUs away (a latency tail that is not ours)",
    )
    stalls.add_argument("--seconds", type=_positive_seconds, default=60.0, help="how long (default 60)")
    stalls.add_argument("--json", action="store_true", help="the report as JSON")
    stalls.set_defaults(func=_host_stalls)

    rec = sub.add_parser("init-recovery", help="create a Bytewax recovery store unless it exists")
    rec.add_argument("dir")
    rec.add_argument("--partitions", type=int, default=1)
    rec.set_defaults(func=_init_recovery)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The demo prints its own progress; its in-process simulator only needs to speak up on problems.
    quiet = args.command in ("demo", "verify") and not os.environ.get("CRYPTOFLOW_LOG_LEVEL")
    setup_logging("WARNING" if quiet else None)
    if getattr(args, "speed", 0) < 0:
        print("cryptoflow: --speed must be 0 or more", file=sys.stderr)
        return 2
    if getattr(args, "clock", None) == "shared" and args.speed == 0:
        print("cryptoflow: --clock shared needs --speed above 0", file=sys.stderr)
        return 2
    if getattr(args, "workers", 1) < 1:
        print("cryptoflow: --workers must be 1 or more", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"cryptoflow: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
