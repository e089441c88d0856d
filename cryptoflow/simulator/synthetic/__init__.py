"""Synthetic exchange mode: a seeded true book per symbol (`market`), protocol-valid frames for the six
protocols (`encoders`), whole sessions as recording records (`streams`)."""

from cryptoflow.simulator.synthetic.market import SyntheticMarket

__all__ = ["SyntheticMarket"]
