"""Prometheus metrics shared by connectors, operators' wrappers and sinks (labels: exchange, stream)."""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge, Histogram

from cryptoflow.thread_histogram import ThreadHistogram

FRAMES = Counter("cryptoflow_frames_total", "Frames received from exchanges", ["exchange", "market"])
BAD_FRAMES = Counter(
    "cryptoflow_bad_frames_total",
    "Frames that could not be parsed or were not understood",
    ["exchange", "reason"],
)
SUBSCRIPTIONS_LEFT_OUT = Counter(
    "cryptoflow_subscriptions_left_out_total",
    "Subscriptions a connection did not make because they exceed the venue's per-connection limit",
    ["exchange"],
)
UNKNOWN_SYMBOL = Counter(
    "cryptoflow_unknown_symbol_total", "Messages for symbols not configured", ["exchange"]
)
SEQ_EVENTS = Counter(
    "cryptoflow_sequence_events_total",
    "Sequencer outcomes per book (applied, stale, gap, resync, buffered_overflow)",
    ["exchange", "outcome"],
)
RESYNCS = Counter(
    "cryptoflow_resyncs_total", "Order-book resyncs requested by connectors", ["exchange", "reason"]
)
RECONNECTS = Counter("cryptoflow_reconnects_total", "WebSocket reconnects", ["exchange", "reason"])
QUEUE_DEPTH = Gauge("cryptoflow_queue_depth", "Frames waiting in a source partition's queue", ["partition"])
ROWS_COMMITTED = Counter("cryptoflow_rows_committed_total", "Rows committed to Iceberg", ["table"])
COMMIT_SECONDS = Histogram("cryptoflow_commit_seconds", "Iceberg commit latency", ["table"])
# The sink's epoch work runs off Bytewax's worker thread (connectors/iceberg/sink.py): how long the
# worker waits at an epoch's end for its data files, how much is queued for conversion, how many
# staged epochs wait for their Iceberg commit, and background commits that failed for good.
SINK_SEAL_SECONDS = Histogram(
    "cryptoflow_sink_seal_seconds",
    "Worker wait at snapshot() for the epoch's last rows to be converted (the seal)",
    ["table"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SINK_SEAL_TAIL_BYTES = Histogram(
    "cryptoflow_sink_seal_tail_bytes",
    "Arrow IPC bytes of rows not yet in data files that a seal put into the recovery state",
    ["table"],
    buckets=(0, 1e4, 1e5, 1e6, 2.5e6, 5e6, 1e7, 2.5e7, 5e7),
)
SINK_HANDOVER_DEPTH = Gauge(
    "cryptoflow_sink_handover_depth", "Row lists handed to the sink's converter, not yet converted", ["table"]
)
SINK_COMMIT_LAG = Gauge(
    "cryptoflow_sink_commit_lag",
    "Staged epochs (data files written) whose Iceberg commit is pending",
    ["table"],
)
SINK_FAILURES = Counter(
    "cryptoflow_sink_failures_total",
    "Sink work that failed for good: background commit, staging, staged files missing on resume",
    ["table", "stage"],
)
# Per book event, from its ingest (or exchange) timestamp to the book logic having applied it and built its
# rows ("normalized"); observed in operators/book_logic.py. The issue-7 target is on since="ingest".
# Observed without locks (cryptoflow/thread_histogram.py): twice per book event on the worker's hot path.
NORMALIZE_LATENCY = ThreadHistogram(
    "cryptoflow_normalize_latency_seconds",
    "Ingest or exchange timestamp of a book event to the book logic's output for it",
    ["stream", "since"],
    buckets=(
        0.0001,
        0.00025,
        0.0005,
        0.001,
        0.002,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
        30,
    ),
)
COMMIT_RETRIES = Counter("cryptoflow_commit_retries_total", "Iceberg commit retries", ["table", "reason"])
BREAKER_STATE = Gauge(
    "cryptoflow_circuit_state", "Circuit breaker state (0 closed, 1 open, 2 half-open)", ["circuit"]
)
BREAKER_OPENS = Counter("cryptoflow_circuit_opens_total", "Circuit breaker trips", ["circuit"])
EGRESS_THROTTLED = Counter(
    "cryptoflow_egress_throttled_total", "429/418 answers per egress IP", ["ip", "status"]
)
EGRESS_ROTATIONS = Counter(
    "cryptoflow_egress_rotations_total", "Egress IPs put into cool-down after repeated 429/418", ["ip"]
)
EGRESS_CONNECTIONS = Gauge(
    "cryptoflow_egress_connections", "Open WebSocket connections per egress IP", ["ip"]
)
RECONNECT_THROTTLE_SECONDS = Counter(
    "cryptoflow_reconnect_throttle_seconds_total", "Time connects waited for the per-IP rate limiter", ["ip"]
)
BACKPRESSURE_DROPS = Counter(
    "cryptoflow_backpressure_drops_total",
    "Items dropped or spilled by a channel's policy",
    ["channel", "policy"],
)
CHANNEL_OCCUPANCY = Gauge("cryptoflow_channel_occupancy", "Fill ratio of a bounded channel", ["channel"])
CHANNEL_HIGH_WATER = Counter(
    "cryptoflow_channel_high_water_total",
    "Times a channel stayed above its high-water mark (80%) for the sustained period",
    ["channel"],
)
REST_RETRIES = Counter(
    "cryptoflow_rest_retries_total", "Failed REST calls that were retried", ["exchange", "reason"]
)
RATE_LIMITED = Counter(
    "cryptoflow_rate_limited_total", "Waits imposed by our own per-IP budgets", ["exchange", "what"]
)
COMMIT_RECONCILED = Counter(
    "cryptoflow_commit_reconciled_total",
    "Commits whose outcome was unknown, then found (landed) or not found (retried) in the table",
    ["table", "outcome"],
)
SNAPSHOTS_EXPIRED = Counter(
    "cryptoflow_snapshots_expired_total",
    "Iceberg snapshots the sink expired (bounded table metadata; outcome ok) or failed to (error)",
    ["table", "outcome"],
)
ROWS_DEDUPED = Counter(
    "cryptoflow_rows_deduplicated_total",
    "Rows dropped by the sink because the table already holds their stream position (replay)",
    ["table"],
)
JOURNAL_RECORDS = Counter("cryptoflow_journal_records_total", "Records appended to a journal", ["journal"])
JOURNAL_SEGMENTS_DELETED = Counter(
    "cryptoflow_journal_segments_deleted_total", "Journal segments deleted by retention", ["journal"]
)
JOURNAL_TORN_TAILS = Counter(
    "cryptoflow_journal_torn_tails_total", "Torn records cut off when a journal was reopened", ["journal"]
)
JOURNAL_MISSING = Counter(
    "cryptoflow_journal_missing_records_total",
    "Records a reader needed that were no longer in the journal (a real gap)",
    ["journal"],
)
LEDGER_EVENTS = Counter(
    "cryptoflow_ledger_events_total", "DynamoDB commit ledger outcomes", ["table", "outcome"]
)
CLIENT_LOOP_TAKEOVERS = Counter(
    "cryptoflow_client_loop_takeovers_total",
    "connector.client_loop worker: times the loop's own thread ran the clients because no worker did",
)


@functools.lru_cache(maxsize=4096)
def seq_event(exchange: str, outcome: str) -> Counter:
    """`SEQ_EVENTS` child for (exchange, outcome), cached: `labels()` takes a lock and builds a key, which
    showed up in the per-frame profile (docs/benchmarks.md)."""
    return SEQ_EVENTS.labels(exchange, outcome)
