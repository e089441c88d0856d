import urllib.error
import urllib.request

import pytest

from cryptoflow import metrics
from cryptoflow.observability import HEALTH, Health, serve


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture
def server():
    srv = serve(0, "127.0.0.1")
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_endpoints(server):
    metrics.FRAMES.labels("binance", "spot").inc()
    status, body = fetch(f"{server}/metrics")
    assert status == 200 and 'cryptoflow_frames_total{exchange="binance",market="spot"}' in body
    assert fetch(f"{server}/live") == (200, "ok\n")
    assert fetch(f"{server}/nope")[0] == 404
    HEALTH.connection("test-conn", False)
    assert fetch(f"{server}/ready")[0] == 503
    HEALTH.connection("test-conn", True)
    assert fetch(f"{server}/ready")[0] == 200
    HEALTH.connection("test-conn", False)


def test_metrics_can_be_restricted_to_named_samples(server):
    metrics.FRAMES.labels("binance", "spot").inc()
    metrics.NORMALIZE_LATENCY.labels("spot_ob", "ingest").observe(0.0003)
    status, full = fetch(f"{server}/metrics")
    assert "cryptoflow_frames_total" in full and "cryptoflow_normalize_latency_seconds_bucket" in full
    status, body = fetch(f"{server}/metrics?name[]=cryptoflow_normalize_latency_seconds_bucket")
    lines = [line for line in body.splitlines() if line and not line.startswith("#")]
    assert status == 200 and lines
    assert all(line.startswith("cryptoflow_normalize_latency_seconds_bucket{") for line in lines)
    assert 'since="ingest",stream="spot_ob"' in body or 'stream="spot_ob",since="ingest"' in body


def test_ready_turns_false_when_commits_stall(monkeypatch):
    health = Health(max_commit_age_s=10)
    health.connection("c", True)
    now = [1000.0]
    monkeypatch.setattr("cryptoflow.observability.time.monotonic", lambda: now[0])
    health.committed()
    assert health.ready()[0]
    now[0] += 11
    ok, why = health.ready()
    assert not ok and "no commit" in why
