from pathlib import Path

import pytest

from cryptoflow.config import DEFAULT_CONFIG_PATH, ConfigError, env_overrides, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_dev_config_loads_with_recording_symbols():
    settings = load_settings(DEFAULT_CONFIG_PATH, environ={})
    assert settings.exchanges.binance.spot.symbols == ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
    assert settings.catalog.type == "sql"
    assert settings.channels.caps_for("binance", "spot_delta").raw_cap == 32768
    assert settings.channels.caps_for("binance", "ticks").raw_cap == 8192


def test_env_overrides_nested_fields_and_parse_yaml_scalars(tmp_path):
    path = write(tmp_path, "sharding: {total_shards: 8}\n")
    env = {
        "CRYPTOFLOW_SHARDING__TOTAL_SHARDS": "32",
        "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__SYMBOLS": "[btcusdt, ETHUSDT]",
        "CRYPTOFLOW_CONNECTOR__STOP_AT_REPLAY_END": "true",
        "CRYPTOFLOW_LOG_LEVEL": "DEBUG",  # not a settings field: ignored
        "OTHER": "x",
    }
    settings = load_settings(path, environ=env)
    assert settings.sharding.total_shards == 32
    assert settings.exchanges.binance.spot.symbols == ["BTCUSDT", "ETHUSDT"]
    assert settings.connector.stop_at_replay_end is True


def test_env_overrides_tree():
    assert env_overrides({"CRYPTOFLOW_CATALOG__URI": "sqlite:///x.db"}) == {
        "catalog": {"uri": "sqlite:///x.db"}
    }


@pytest.mark.parametrize(
    ("yaml_text", "field", "reason"),
    [
        ("sharding: {total_shards: 0}\n", "sharding.total_shards", "greater than or equal to 1"),
        ("sharding: {replica_index: 3, replica_count: 2}\n", "sharding", "replica_index 3 must be below"),
        ("parquet: {compresion: zstd}\n", "parquet.compresion", "unknown field"),
        ("catalog: {type: rest}\n", "catalog", "rest_uri is not set"),
        (
            "exchanges: {binance: {spot: {symbols: [BTC-USDT]}}}\n",
            "exchanges.binance.spot.symbols",
            "letters",
        ),
        ("exchanges: {binance: {spot: {ws_url: ftp://x}}}\n", "exchanges.binance.spot.ws_url", "not a ws"),
    ],
)
def test_bad_config_names_field_and_reason(tmp_path, yaml_text, field, reason):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, yaml_text), environ={})
    message = str(err.value)
    assert field in message and reason in message
    assert "\n" not in message


def test_bad_env_value_is_reported_like_a_file_value(tmp_path):
    with pytest.raises(ConfigError, match=r"sharding\.total_shards"):
        load_settings(write(tmp_path, "{}\n"), environ={"CRYPTOFLOW_SHARDING__TOTAL_SHARDS": "many"})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "a: [1,\n"), environ={})
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(write(tmp_path, "- 1\n"), environ={})


def test_config_path_from_environment(tmp_path):
    path = write(tmp_path, "sharding: {total_shards: 7}\n")
    assert load_settings(environ={"CRYPTOFLOW_CONFIG": str(path)}).sharding.total_shards == 7
