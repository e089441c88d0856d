"""The order-book engine: book state, exchange checksums, per-book tracking and snapshot emission."""
