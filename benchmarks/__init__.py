"""`make bench`: throughput of CryptoFlow's pipeline against the JSON ceiling and cryptofeed, on the
same recorded frames in the same run. Reports, never asserts: CI does not time anything."""
