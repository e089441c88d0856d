"""Egress: which local IP each shard's sockets bind to, and how the IPs are protected."""

from connectors.egress.imds import discover_imds_ips
from connectors.egress.manager import EgressExhausted, EgressManager, egress_from_config

__all__ = ["EgressExhausted", "EgressManager", "discover_imds_ips", "egress_from_config"]
