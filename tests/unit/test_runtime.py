"""Recovery store set-up and the exactly-once config fields."""

import pytest

from cryptoflow.config import ConfigError, load_settings
from cryptoflow.runtime import ensure_recovery_store, recovery_dir_from_argv


def test_recovery_dir_is_found_in_bytewax_arguments_or_environment():
    assert recovery_dir_from_argv(["bytewax.run", "dataflows.ticks", "-r", "rec", "-s", "1"], {}) == "rec"
    assert recovery_dir_from_argv(["x", "--recovery-directory=/a/b"], {}) == "/a/b"
    assert recovery_dir_from_argv(["x"], {"BYTEWAX_RECOVERY_DIRECTORY": "env-dir"}) == "env-dir"
    assert recovery_dir_from_argv(["x", "-w", "2"], {}) is None


def test_recovery_store_is_created_once_and_then_left_alone(tmp_path):
    target = tmp_path / "a" / "recovery"
    assert ensure_recovery_store(target, 3) is True
    parts = sorted(p.name for p in target.glob("part-*.sqlite3"))
    assert parts == ["part-0.sqlite3", "part-1.sqlite3", "part-2.sqlite3"]
    stamp = (target / "part-0.sqlite3").stat().st_mtime_ns
    assert ensure_recovery_store(target, 3) is False  # no panic, nothing rewritten
    assert (target / "part-0.sqlite3").stat().st_mtime_ns == stamp


def test_exactly_once_fields_load_from_the_dev_config_and_environment():
    settings = load_settings(
        environ={"CRYPTOFLOW_JOURNAL__FSYNC": "always", "CRYPTOFLOW_LEDGER__TABLE": "audit"}
    )
    assert settings.journal.fsync == "always" and settings.journal.enabled is False
    assert settings.ledger.table == "audit" and settings.recovery.partitions == 1
    assert settings.sink.commit_attempts >= 1


def test_a_bad_fsync_policy_is_named_in_the_error():
    with pytest.raises(ConfigError, match=r"journal\.fsync"):
        load_settings(environ={"CRYPTOFLOW_JOURNAL__FSYNC": "sometimes"})
