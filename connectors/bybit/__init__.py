"""bybit: message parsing (and, later, the live WebSocket client)."""
