"""CryptoFlow: verified crypto market data into exactly-once Iceberg tables."""

import os as _os

# Arrow picks its C++ default allocator when pyarrow loads, and every CryptoFlow process imports this
# package before pyarrow: malloc, whose free pages `cryptoflow.allocator.release()` can hand back
# (Arrow's mimalloc keeps them in per-thread heaps; issue #6). An operator's own choice wins.
_os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

__version__ = "0.1.0"
