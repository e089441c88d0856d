"""cryptoflow/native.py: a missing compiled extension is said once, by name, with how to build it."""

from __future__ import annotations

import importlib.util
import logging

from cryptoflow import native


def test_it_says_exactly_what_this_install_lacks(caplog, monkeypatch):
    monkeypatch.setattr(native, "_warned", False)
    lacking = [name for name in native.EXTENSIONS if importlib.util.find_spec(name) is None]
    with caplog.at_level(logging.WARNING, logger="cryptoflow.native"):
        assert native.warn_if_missing() == lacking  # [] where a C compiler built them, as here
    assert len(caplog.records) == (1 if lacking else 0)


def test_a_missing_extension_is_named_once_per_process(caplog, monkeypatch):
    monkeypatch.setattr(native, "_warned", False)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        native.importlib.util,
        "find_spec",
        lambda name: None if name == "connectors.binance._depth" else real(name),
    )
    with caplog.at_level(logging.WARNING, logger="cryptoflow.native"):
        assert native.warn_if_missing() == ["connectors.binance._depth"]
        assert native.warn_if_missing() == ["connectors.binance._depth"]
    (record,) = caplog.records
    assert "connectors.binance._depth (Binance depth decoder)" in record.getMessage()
    assert "pip install -e ." in record.getMessage()
