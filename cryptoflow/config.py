"""Typed configuration: YAML file -> pydantic models, with `CRYPTOFLOW_...` environment overrides.

A bad config must stop the program with one line that names the field and the reason, never with a
traceback from deep inside a connector, so every section forbids unknown keys and validates ranges.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cryptoflow.paths import REPO_ROOT

ENV_PREFIX = "CRYPTOFLOW_"
ENV_CONFIG_PATH = "CRYPTOFLOW_CONFIG"
# Variables with the prefix that are not config fields.
ENV_NOT_SETTINGS = {
    ENV_CONFIG_PATH,
    "CRYPTOFLOW_LOG_LEVEL",
    "CRYPTOFLOW_CHAOS_SECONDS",
    "CRYPTOFLOW_CHAOS_SEED",
}

DEFAULT_CONFIG_PATH = REPO_ROOT / "configs" / "dev" / "cryptoflow.yaml"


class ConfigError(Exception):
    """A configuration problem, phrased for the person who wrote the config."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelCaps(_Section):
    """Bounded queue sizes (design.md `channels`)."""

    raw_cap: int = Field(8192, ge=1, le=10_000_000)
    norm_cap: int = Field(8192, ge=1, le=10_000_000)
    buffer_inbox_cap: int = Field(2048, ge=1, le=10_000_000)
    # what a full raw channel does (connectors/backpressure.py): wait | drop-oldest | sample | spill
    policy: Literal["wait", "drop-oldest", "sample", "spill"] = "wait"
    sample_every: int = Field(10, ge=1)
    high_water_sustain_s: float = Field(5.0, gt=0)


# Streams built from order-book diffs: a dropped diff breaks the book, so their channels may only wait or spill.
BOOK_STREAMS = ("spot_delta", "spot_ob", "futures_delta", "futures_ob")
LOSSLESS_POLICIES = ("wait", "spill")


class ChannelsConfig(_Section):
    defaults: ChannelCaps = ChannelCaps()
    # overrides[exchange][stream] = caps, e.g. overrides.binance.spot_delta.raw_cap
    overrides: dict[str, dict[str, ChannelCaps]] = {}
    # where the `spill` policy writes a partition's overflow (journal segments, deleted once read back)
    spill_dir: str = "journal/spill"

    def caps_for(self, exchange: str, stream: str) -> ChannelCaps:
        return self.overrides.get(exchange, {}).get(stream, self.defaults)

    @model_validator(mode="after")
    def _books_never_drop(self) -> ChannelsConfig:
        if self.defaults.policy not in LOSSLESS_POLICIES:
            raise ValueError(
                f"defaults.policy {self.defaults.policy!r} would apply to the book streams "
                f"({', '.join(BOOK_STREAMS)}), which may only wait or spill (a dropped diff breaks the "
                "book); set drop policies per stream under channels.overrides"
            )
        for exchange, streams in self.overrides.items():
            for stream, caps in streams.items():
                if stream in BOOK_STREAMS and caps.policy not in LOSSLESS_POLICIES:
                    raise ValueError(
                        f"overrides.{exchange}.{stream}.policy {caps.policy!r}: book streams may only "
                        "wait or spill (a dropped diff breaks the book)"
                    )
        return self


class ShardingConfig(_Section):
    """Shards, which replica owns them, and the egress IPs their sockets bind to (architecture §4)."""

    total_shards: int = Field(16, ge=1, le=65_536)
    replica_index: int = Field(0, ge=0)
    replica_count: int = Field(1, ge=1)
    # rendezvous: adding a replica moves only ~1/n of the shards; modulo: shard % replica_count
    ownership: Literal["rendezvous", "modulo"] = "rendezvous"
    egress_pool: list[str] = []
    per_shard_ip_override: dict[int, str] = {}
    # "imds": add the EC2 instance's ENI private IPs (IMDSv2) to egress_pool at start
    egress_discovery: Literal["none", "imds"] = "none"
    imds_url: str = "http://169.254.169.254"
    max_connections_per_ip: int = Field(200, ge=1)
    # rotate an IP away after this many 429/418 within throttle_window_s, for max(cooldown, Retry-After)
    throttle_strikes: int = Field(2, ge=1)
    throttle_window_s: float = Field(60.0, gt=0)
    cooldown_s: float = Field(120.0, ge=0)
    # (re)connects per IP: a token bucket shared by every shard of the process
    reconnects_per_ip_per_s: float = Field(5.0, gt=0)
    reconnect_burst: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _replica_in_range(self) -> ShardingConfig:
        if self.replica_index >= self.replica_count:
            raise ValueError(
                f"replica_index {self.replica_index} must be below replica_count {self.replica_count}"
            )
        return self


class ParquetConfig(_Section):
    target_mb: int = Field(128, ge=1, le=4096)
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    compression_level: int | None = None
    row_group_rows: int = Field(1_048_576, ge=1_000)


class CatalogConfig(_Section):
    """Where tables live: `sql` is the embedded SQLite + local files default; `rest` is S3 Tables."""

    type: Literal["sql", "rest"] = "sql"
    name: str = "cryptoflow"
    namespace: str = "cryptoflow"
    # sql
    uri: str = "sqlite:///warehouse/catalog.db"
    warehouse: str = "warehouse"
    # rest (Amazon S3 Tables: https://s3tables.<region>.amazonaws.com/iceberg, warehouse = bucket ARN)
    rest_uri: str | None = None
    region: str | None = None
    signing_name: str = "s3tables"
    properties: dict[str, str] = {}

    @model_validator(mode="after")
    def _rest_needs_uri(self) -> CatalogConfig:
        if self.type == "rest" and not self.rest_uri:
            raise ValueError("catalog.type is 'rest' but catalog.rest_uri is not set")
        return self


class BookConfig(_Section):
    depth_cap: int = Field(2000, ge=1, le=100_000)
    snapshot_interval_ms: int = Field(100, ge=1)
    checkpoint_interval_ms: int = Field(1000, ge=1)
    snapshot_depth: int = Field(
        50, ge=1, le=100_000
    )  # levels per side in 100 ms snapshots (checkpoints: all)
    max_buffered_diffs: int = Field(10_000, ge=1)


class BinanceMarketConfig(_Section):
    """What Binance spot and USD-M share: symbols, stream choice, connection limits and rotation."""

    enabled: bool = True
    symbols: list[str] = []
    # The public recordings carry aggTrade; `trade` gives one row per fill (spot only).
    trade_stream: Literal["aggTrade", "trade"] = "aggTrade"
    max_streams_per_connection: int = Field(1024, ge=1, le=1024)
    streams_per_subscribe: int = Field(200, ge=1, le=1024)  # params per SUBSCRIBE message
    # Binance drops every connection at 24 h: open a replacement before that and hand over to it.
    rotate_after_s: float = Field(23 * 3600, gt=0, le=24 * 3600)
    rotation_overlap_max_s: float = Field(10.0, gt=0)  # hand over at the latest after this much overlap
    instruments_refresh_s: float = Field(3600.0, gt=0)  # re-read exchangeInfo this often
    http_timeout_s: float = Field(10.0, gt=0)

    @field_validator("symbols")
    @classmethod
    def _symbols_upper_unique(cls, symbols: list[str]) -> list[str]:
        cleaned = [s.strip().upper() for s in symbols]
        bad = [s for s in cleaned if not s.replace("_", "").isalnum()]
        if bad:
            raise ValueError(f"Binance symbols are letters and digits only (got {bad})")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("symbols are listed twice")
        return cleaned

    @field_validator("ws_url", "rest_url", check_fields=False)
    @classmethod
    def _url_scheme(cls, url: str) -> str:
        if url.split("://", 1)[0] not in {"ws", "wss", "http", "https"}:
            raise ValueError(f"{url!r} is not a ws(s):// or http(s):// URL")
        return url.rstrip("/")


class BinanceSpotConfig(BinanceMarketConfig):
    ws_url: str = "wss://stream.binance.com:9443"
    rest_url: str = "https://api.binance.com"
    depth_stream: Literal["depth", "depth@100ms"] = "depth@100ms"
    snapshot_limit: int = Field(1000, ge=1, le=5000)
    # Binance spot: 5 incoming messages/s per connection (pongs included); 4 leaves room for pongs.
    max_messages_per_s: float = Field(4.0, gt=0, le=5)


class BinanceUsdmConfig(BinanceMarketConfig):
    """USD-M futures. Since 2026-04 depth and bookTicker are served under `<ws_url>/public`, every other
    public stream under `<ws_url>/market`; `url_layout: legacy` uses `<ws_url>/stream` for both
    (recordings taken before the split, older testnets)."""

    enabled: bool = False
    ws_url: str = "wss://fstream.binance.com"
    rest_url: str = "https://fapi.binance.com"
    url_layout: Literal["split", "legacy"] = "split"
    depth_stream: Literal["depth", "depth@100ms", "depth@250ms", "depth@500ms", "depth@0ms"] = "depth@100ms"
    mark_price_stream: Literal["markPrice", "markPrice@1s"] = "markPrice@1s"
    snapshot_limit: Literal[5, 10, 20, 50, 100, 500, 1000] = 1000
    trade_stream: Literal["aggTrade"] = "aggTrade"
    # USD-M: 10 incoming messages/s per connection; 8 leaves room for pongs.
    max_messages_per_s: float = Field(8.0, gt=0, le=10)


class BinanceConfig(_Section):
    spot: BinanceSpotConfig = BinanceSpotConfig()
    usdm: BinanceUsdmConfig = BinanceUsdmConfig()


def _ws_or_http_url(url: str) -> str:
    if url.split("://", 1)[0] not in {"ws", "wss", "http", "https"}:
        raise ValueError(f"{url!r} is not a ws(s):// or http(s):// URL")
    return url.rstrip("/")


def _unique_upper(symbols: list[str]) -> list[str]:
    cleaned = [s.strip().upper() for s in symbols]
    if len(set(cleaned)) != len(cleaned):
        raise ValueError("symbols are listed twice")
    return cleaned


class BybitConfig(_Section):
    """Bybit v5 public streams: `/v5/public/spot` and `/v5/public/linear` are separate connections."""

    enabled: bool = True
    ws_url: str = "wss://stream.bybit.com"
    rest_url: str = "https://api.bybit.com"
    spot_symbols: list[str] = []
    linear_symbols: list[str] = []
    book_depth: Literal[1, 50, 200, 1000] = 200
    ping_interval_s: float = Field(20.0, gt=0)  # Bybit drops connections silent for 30 s
    pong_timeout_s: float = Field(10.0, gt=0)
    max_args_per_subscribe: int = Field(10, ge=1, le=10)  # spot rejects more than 10 args per request
    max_args_chars_per_connection: int = Field(21_000, ge=100, le=21_000)
    instruments_refresh_s: float = Field(3600.0, gt=0)
    resync_timeout_s: float = Field(10.0, gt=0)  # resubscribe again if no snapshot came back
    http_timeout_s: float = Field(10.0, gt=0)

    _symbols = field_validator("spot_symbols", "linear_symbols")(classmethod(lambda cls, v: _unique_upper(v)))
    _urls = field_validator("ws_url", "rest_url")(classmethod(lambda cls, v: _ws_or_http_url(v)))


class OkxConfig(_Section):
    """OKX v5 public: one `/ws/v5/public` connection per shard carries every instrument type."""

    enabled: bool = True
    ws_url: str = "wss://ws.okx.com:8443"
    rest_url: str = "https://openapi.okx.com"  # the 2026 docs' REST base (www.okx.com also serves it)
    symbols: list[str] = []  # instrument ids: BTC-USDT, BTC-USDT-SWAP, BTC-USD-260925
    book_channel: Literal["books", "books-l2-tbt", "books50-l2-tbt"] = "books"
    ping_interval_s: float = Field(20.0, gt=0, lt=30)  # OKX closes a connection silent for 30 s
    pong_timeout_s: float = Field(5.0, gt=0)
    max_args_per_connection: int = Field(240, ge=4)  # one instrument may need 3 channels + liquidations
    max_books_per_connection: int = Field(25, ge=1)  # OKX: prefer < 30 depth channels per connection
    subscribe_ops_per_hour: int = Field(480, ge=1, le=480)
    connects_per_s: float = Field(3.0, gt=0, le=3.0)  # per IP
    instruments_refresh_s: float = Field(3600.0, gt=0)
    resync_timeout_s: float = Field(10.0, gt=0)
    http_timeout_s: float = Field(10.0, gt=0)

    _symbols = field_validator("symbols")(classmethod(lambda cls, v: _unique_upper(v)))
    _urls = field_validator("ws_url", "rest_url")(classmethod(lambda cls, v: _ws_or_http_url(v)))


class CoinbaseConfig(_Section):
    """Coinbase Advanced Trade market data (exchange-protocols.md §5); symbols are product ids `BTC-USD`."""

    enabled: bool = True
    ws_url: str = "wss://advanced-trade-ws.coinbase.com"
    rest_url: str = "https://api.coinbase.com"
    symbols: list[str] = []
    max_products_per_connection: int = Field(100, ge=1, le=10_000)
    connects_per_s: float = Field(8.0, gt=0)  # per IP
    messages_per_s: float = Field(8.0, gt=0)  # unauthenticated messages per IP
    idle_timeout_s: float = Field(10.0, gt=0)  # heartbeats arrive every second
    instruments_refresh_s: float = Field(3600.0, gt=0)
    http_timeout_s: float = Field(10.0, gt=0)

    _urls = field_validator("ws_url", "rest_url")(classmethod(lambda cls, v: _ws_or_http_url(v)))


class KrakenConfig(_Section):
    """Kraken spot WebSocket v2 (exchange-protocols.md §6); symbols are v2 pairs `BTC/USD` (BTC, not XBT)."""

    enabled: bool = True
    ws_url: str = "wss://ws.kraken.com/v2"
    rest_url: str = "https://api.kraken.com"
    symbols: list[str] = []
    book_depth: Literal[10, 25, 100, 500, 1000] = 10
    max_symbols_per_connection: int = Field(100, ge=1, le=10_000)
    connects_per_10min: int = Field(150, ge=1)  # per IP (Cloudflare), else a 10-minute ban
    ping_interval_s: float = Field(20.0, gt=0)  # idle connections are closed after ~60 s
    idle_timeout_s: float = Field(60.0, gt=0)
    subscribe_timeout_s: float = Field(15.0, gt=0)  # no snapshot/ack this long after connecting: reconnect
    instruments_refresh_s: float = Field(3600.0, gt=0)
    http_timeout_s: float = Field(10.0, gt=0)

    _urls = field_validator("ws_url", "rest_url")(classmethod(lambda cls, v: _ws_or_http_url(v)))

    @field_validator("symbols")
    @classmethod
    def _v2_pairs(cls, symbols: list[str]) -> list[str]:
        bad = [s for s in symbols if "/" not in s or s.startswith("XBT/")]
        if bad:
            raise ValueError(f"Kraken v2 symbols look like BTC/USD (not XBT) (got {bad})")
        return symbols


class ExchangesConfig(_Section):
    binance: BinanceConfig = BinanceConfig()
    bybit: BybitConfig = BybitConfig()  # no symbols configured = no connections
    okx: OkxConfig = OkxConfig()
    coinbase: CoinbaseConfig = CoinbaseConfig()
    kraken: KrakenConfig = KrakenConfig()


class ConnectorConfig(_Section):
    """How sources behave; `stop_at_replay_end` lets demos and tests finish with the recording."""

    stop_at_replay_end: bool = False
    reconnect_initial_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    # circuit breaker per client and kind (ws, rest): open after N straight failures, probe after reset_s
    breaker_failures: int = Field(5, ge=1)
    breaker_reset_s: float = Field(30.0, gt=0)
    # how long an empty source sleeps before Bytewax polls it again: a floor on ingest -> normalized
    idle_poll_ms: int = Field(1, ge=1, le=1000)
    # an empty source sleeps (at most idle_poll_ms) until a client hands it frames, instead of until the
    # next poll (`connectors/doorbell.py`): frames no longer wait up to idle_poll_ms for the worker
    wake_on_data: bool = True
    batch_size: int = Field(1000, ge=1)
    # WebSocket data frames split by our own loop and handed over per socket read
    # (`connectors/ws_fast.py`); false: every frame goes through websockets' `recv()`
    ws_fast_read: bool = True
    # shared: every WebSocket client of the process on one event-loop thread (`connectors/client_loop.py`:
    # fewer GIL hand-offs, less CPU, lower tail latency); per_client: a thread and event loop per client
    # (a client blocked on a full `wait` channel then holds up only itself); worker: the shared loop, run
    # by the Bytewax worker itself while it is idle (needs wake_on_data), its thread only a fallback
    client_loop: Literal["shared", "per_client", "worker"] = "worker"


class RuntimeConfig(_Section):
    """Dataflow-process settings. `switch_interval_ms` is Python's GIL switch interval
    (`sys.setswitchinterval`): a thread wanting the GIL waits up to this long for the holder to let go,
    so with a client thread and the Bytewax worker in one process it bounds each hand-off's wait.
    Python's default is 5 ms; lower means lower latency at some throughput cost."""

    switch_interval_ms: float = Field(1.0, gt=0, le=100)


class JournalConfig(_Section):
    """Per-shard journal between connector and dataflow (architecture.md section 1).

    `dir/<stream>/<partition>/` holds a live flow's segments; they are deleted once the dataflow's
    recovery state has durably moved past them and they are older than `retention_s`. With
    `replay_dir` set the flow connects to no exchange and replays that capture (`cryptoflow capture`).
    """

    enabled: bool = False
    dir: str = "journal"
    fsync: Literal["always", "interval", "never"] = "interval"
    fsync_interval_ms: int = Field(1000, ge=1)
    segment_mb: int = Field(64, ge=1, le=4096)
    retention_s: float = Field(0.0, ge=0)
    replay_dir: str | None = None


class RecoveryConfig(_Section):
    """Bytewax recovery store: created on first use with this many partitions (fixed forever)."""

    partitions: int = Field(1, ge=1, le=1024)


class LedgerConfig(_Section):
    """Optional DynamoDB commit ledger: a fence and audit log, never the source of truth."""

    enabled: bool = False
    table: str = "cryptoflow-commits"
    region: str = "us-east-1"
    endpoint_url: str | None = None


class SinkConfig(_Section):
    """Commit retries on top of pyiceberg's own (conflicts, unknown outcomes, storage errors)."""

    commit_attempts: int = Field(8, ge=1, le=100)
    retry_initial_s: float = Field(0.2, gt=0)
    retry_max_s: float = Field(10.0, gt=0)
    # Bounded table metadata (docs/exactly-once.md, "Bounded metadata"): every `expire_every_commits`
    # commits the sink expires snapshots older than `snapshot_max_age_s`, always keeping the newest
    # `snapshot_min_keep`; 0 turns the sink's own expiry off (S3 Tables' managed expiry can do it).
    expire_every_commits: int = Field(50, ge=0)
    snapshot_max_age_s: float = Field(3600.0, ge=0)
    snapshot_min_keep: int = Field(10, ge=1)
    # metadata.json versions kept (`write.metadata.previous-versions-max`) and whether older ones are
    # deleted after each commit (`write.metadata.delete-after-commit.enabled`); false on S3 Tables,
    # which removes unreferenced files itself and does not let writers delete objects
    metadata_versions_max: int = Field(20, ge=1)
    metadata_delete_after_commit: bool = True
    # The sink writes an epoch's data files in a background thread every this many converted rows
    # (each write sorted; 16 files per write for the bucketed tables). The epoch's end waits for no
    # file: the rows not in files yet travel in the recovery state as Arrow IPC (the tail, ~430
    # bytes per `spot_ob` row, at most ~2 x stage_rows rows), so a smaller value means a smaller state
    # and more, smaller files. 0 = every file after the epoch's end (docs/exactly-once.md).
    stage_rows: int = Field(25_000, ge=0)
    # Where Parquet files, Iceberg commits, reloads and snapshot expiry run: `process` = one sink child
    # process per flow process (its own catalog and GIL; the worker thread that normalizes no longer
    # shares the GIL with pyiceberg), `thread` = threads of the flow process (no child; for tests that
    # hand the sink an in-memory table). Decisions, state and metrics stay in the flow process either way.
    executor: Literal["process", "thread"] = "process"


class MetricsConfig(_Section):
    """`port` serves /metrics, /live and /ready; unset = no endpoint (embedded runs, tests)."""

    port: int | None = Field(None, ge=0, le=65_535)
    ready_max_commit_age_s: float = Field(300.0, gt=0)


class Settings(_Section):
    exchanges: ExchangesConfig = ExchangesConfig()
    channels: ChannelsConfig = ChannelsConfig()
    sharding: ShardingConfig = ShardingConfig()
    parquet: ParquetConfig = ParquetConfig()
    catalog: CatalogConfig = CatalogConfig()
    book: BookConfig = BookConfig()
    connector: ConnectorConfig = ConnectorConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    metrics: MetricsConfig = MetricsConfig()
    journal: JournalConfig = JournalConfig()
    recovery: RecoveryConfig = RecoveryConfig()
    ledger: LedgerConfig = LedgerConfig()
    sink: SinkConfig = SinkConfig()


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def env_overrides(environ: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    """`CRYPTOFLOW_CATALOG__URI=...` -> {"catalog": {"uri": ...}}; values are parsed as YAML scalars/lists."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_SETTINGS:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        _set_path(tree, path, value)
    return tree


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    reason = first["msg"]
    if first["type"] == "extra_forbidden":
        reason = "unknown field (check the spelling)"
    more = f" (and {error.error_count() - 1} more problem(s))" if error.error_count() > 1 else ""
    return f"invalid config {source}: {field}: {reason}{more}"


def load_settings(
    path: str | Path | None = None, environ: dict[str, str] | os._Environ[str] | None = None
) -> Settings:
    """Read YAML (path, else $CRYPTOFLOW_CONFIG, else configs/dev), apply env overrides, validate."""
    environ = os.environ if environ is None else environ
    chosen = Path(path or environ.get(ENV_CONFIG_PATH) or DEFAULT_CONFIG_PATH)
    if not chosen.is_file():
        raise ConfigError(f"config file not found: {chosen}")
    try:
        data = yaml.safe_load(chosen.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {chosen} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {chosen} must be a mapping at the top level")
    data = _deep_merge(data, env_overrides(environ))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(chosen))) from None


def load_settings_or_exit(path: str | Path | None = None) -> Settings:
    """For entry points: a bad config ends the process with one clear line and exit status 2."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise SystemExit(f"cryptoflow: {exc}") from None
