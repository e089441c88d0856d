"""Prometheus metrics shared by connectors, operators' wrappers and sinks (labels: exchange, stream)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRAMES = Counter("cryptoflow_frames_total", "Frames received from exchanges", ["exchange", "market"])
BAD_FRAMES = Counter(
    "cryptoflow_bad_frames_total",
    "Frames that could not be parsed or were not understood",
    ["exchange", "reason"],
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
COMMIT_RETRIES = Counter("cryptoflow_commit_retries_total", "Iceberg commit retries", ["table", "reason"])
RATE_LIMITED = Counter(
    "cryptoflow_rate_limited_total", "Waits imposed by our own per-IP budgets", ["exchange", "what"]
)
