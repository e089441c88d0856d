"""CryptoFlow: verified crypto market data into exactly-once Iceberg tables."""

__version__ = "0.1.0"
