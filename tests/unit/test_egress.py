import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connectors.egress import EgressExhausted, EgressManager, discover_imds_ips, egress_from_config
from cryptoflow.config import ShardingConfig

POOL = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def manager(**kw) -> tuple[EgressManager, FakeClock]:
    clock = FakeClock()
    kw.setdefault("cooldown_s", 30.0)
    return EgressManager(POOL, kw.pop("overrides", None), clock=clock, **kw), clock


def test_round_robin_over_sorted_shards_with_overrides():
    egress, _ = manager(overrides={7: "10.9.9.9"})
    egress.assign([9, 2, 7, 5, 11])
    assert {s: egress.address_for(s) for s in (2, 5, 7, 9, 11)} == {
        2: "10.0.0.1",
        5: "10.0.0.2",
        7: "10.9.9.9",
        9: "10.0.0.3",
        11: "10.0.0.1",
    }


def test_no_pool_means_default_route():
    egress = EgressManager()
    assert egress.address_for(3) is None and egress.open(3) is None


def test_repeated_429_rotates_the_ip_for_max_of_cooldown_and_retry_after():
    egress, clock = manager(throttle_strikes=2, cooldown_s=30.0)
    egress.assign([0, 1])
    assert egress.address_for(0) == "10.0.0.1"
    assert not egress.report_throttle("10.0.0.1", 429, retry_after_s=90)  # one strike: stay
    assert egress.address_for(0) == "10.0.0.1"
    assert egress.report_throttle("10.0.0.1", 429, retry_after_s=90)  # second: cool down
    assert egress.cooling("10.0.0.1") == pytest.approx(90)  # Retry-After beats the 30 s cooldown
    assert egress.address_for(0) == "10.0.0.2"  # moved to the next IP of the pool
    assert egress.address_for(1) == "10.0.0.2"  # shard 1 was already there
    assert list(egress.rotations) == [(0, "10.0.0.1", "10.0.0.2")]
    clock.now += 91
    assert egress.cooling("10.0.0.1") == 0
    assert egress.address_for(0) == "10.0.0.2"  # no flapping back once moved


def test_strikes_outside_the_window_do_not_count_and_418_rotates_at_once():
    egress, clock = manager(throttle_strikes=2, throttle_window_s=10)
    egress.assign([0])
    egress.report_throttle("10.0.0.1", 429)
    clock.now += 11
    assert not egress.report_throttle("10.0.0.1", 429)
    assert egress.report_throttle("10.0.0.2", 418, retry_after_s=120)
    assert egress.cooling("10.0.0.2") == pytest.approx(120)


def test_when_every_ip_cools_the_soonest_to_recover_is_used():
    egress, _ = manager(throttle_strikes=1, cooldown_s=10)
    egress.assign([0])
    egress.report_throttle("10.0.0.1", 429, 50)
    egress.report_throttle("10.0.0.2", 429, 20)
    egress.report_throttle("10.0.0.3", 429, 40)
    assert egress.address_for(0) == "10.0.0.2"


def test_connection_caps_per_ip():
    egress, _ = manager(max_connections_per_ip=1)
    egress.assign([0, 1, 2, 3])
    ips = [egress.open(s) for s in (0, 1, 2)]
    assert ips == POOL
    with pytest.raises(EgressExhausted):
        egress.open(3)  # its round-robin IP and every other one is full
    egress.close("10.0.0.2")
    assert egress.open(3) == "10.0.0.2"
    assert [egress.connections(ip) for ip in POOL] == [1, 1, 1]


def test_reconnect_token_bucket_is_shared_per_ip():
    egress, clock = manager(reconnects_per_s=2.0, reconnect_burst=3)
    waits = [egress.connect_delay("10.0.0.1") for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, pytest.approx(0.5), pytest.approx(1.0)]
    assert egress.connect_delay("10.0.0.2") == 0.0  # another IP has its own budget
    clock.now += 10  # refills, but never above the burst
    assert [egress.connect_delay("10.0.0.1") for _ in range(4)][-1] == pytest.approx(0.5)


class _Imds(BaseHTTPRequestHandler):
    token = "tok-123"
    macs = {"0e:11:22:33:44:55": "172.31.5.10\n172.31.5.11\n172.31.5.12", "0e:aa:bb:cc:dd:ee": "172.31.9.7"}
    seen: list[tuple[str, str, str | None]] = []

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        self.seen.append(("PUT", self.path, self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")))
        if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self._send(400, "")
        self._send(200, self.token)

    def do_GET(self):
        self.seen.append(("GET", self.path, self.headers.get("X-aws-ec2-metadata-token")))
        if self.headers.get("X-aws-ec2-metadata-token") != self.token:
            return self._send(401, "")  # IMDSv2 refuses token-less (v1) requests
        prefix = "/latest/meta-data/network/interfaces/macs/"
        if self.path == prefix:
            return self._send(200, "".join(f"{m}/\n" for m in self.macs))
        for mac, ips in self.macs.items():
            if self.path == f"{prefix}{mac}/local-ipv4s":
                return self._send(200, ips)
        self._send(404, "")


@pytest.fixture
def imds():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Imds.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_imdsv2_discovery_lists_every_eni_ip_with_a_token(imds):
    assert discover_imds_ips(imds) == ["172.31.5.10", "172.31.5.11", "172.31.5.12", "172.31.9.7"]
    assert _Imds.seen[0] == ("PUT", "/latest/api/token", "300")
    assert all(token == "tok-123" for method, _, token in _Imds.seen[1:])


def test_config_discovery_extends_the_pool_and_survives_a_missing_endpoint(imds):
    cfg = ShardingConfig(egress_pool=["172.31.5.11", "10.1.1.1"], egress_discovery="imds", imds_url=imds)
    egress = egress_from_config(cfg, [0, 1])
    assert egress.pool == ["172.31.5.11", "10.1.1.1", "172.31.5.10", "172.31.5.12", "172.31.9.7"]
    dead = ShardingConfig(egress_pool=["10.1.1.1"], egress_discovery="imds", imds_url="http://127.0.0.1:9")
    assert egress_from_config(dead, [0]).pool == ["10.1.1.1"]


def test_rotation_history_is_bounded_over_endless_throttling():
    """Issue #6: every move was kept forever; a chaos run (429 storms, bans) rotates without end."""
    from connectors.egress.manager import ROTATION_HISTORY

    egress, clock = manager(throttle_strikes=1, cooldown_s=1.0)
    egress.assign([0])
    moves = []
    for _ in range(3 * ROTATION_HISTORY):
        ip = egress.address_for(0)
        egress.report_throttle(ip, 418)
        new = egress.address_for(0)
        moves.append((0, ip, new))
        clock.now += 2.0
    assert len(egress.rotations) == ROTATION_HISTORY
    assert list(egress.rotations) == moves[-ROTATION_HISTORY:]  # the most recent moves, in order
