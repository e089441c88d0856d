"""A tiny dataflow for `tests/unit/test_flow_procs.py`: prints `CFTEST_GREETING` once per input item
(the child's environment and stdout are what the test checks); `CFTEST_FAIL=1` makes the flow raise."""

import os

from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource


def _greet(item: int) -> int:
    if os.environ.get("CFTEST_FAIL") == "1":
        raise RuntimeError("asked to fail")
    print(f"{os.environ['CFTEST_GREETING']} {item}", flush=True)
    return item


flow = Dataflow("env_echo")
op.inspect("seen", op.map("greet", op.input("in", flow, TestingSource([1, 2, 3])), _greet))
