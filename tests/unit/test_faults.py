from collections import Counter

from cryptoflow.simulator.faults import FaultInjector, FaultPlan, FrameFault


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_frame_faults_follow_their_probabilities_and_replay_from_the_seed():
    plan = FaultPlan(seed=3, disconnect_prob=0.02, stall_prob=0.03, burst_prob=0.05)
    rolls = [FaultInjector(plan).frame_fault() for _ in range(1)]
    injector = FaultInjector(plan)
    faults = Counter(injector.frame_fault() for _ in range(20_000))
    assert abs(faults[FrameFault.DISCONNECT] / 20_000 - 0.02) < 0.005
    assert abs(faults[FrameFault.STALL] / 20_000 - 0.03) < 0.006
    assert abs(faults[FrameFault.BURST] / 20_000 - 0.05) < 0.008
    assert injector.counts["disconnect"] == faults[FrameFault.DISCONNECT]
    again = FaultInjector(plan)
    assert [again.frame_fault() for _ in range(1)] == rolls  # same seed, same chaos


def test_throttled_ip_draws_429_and_escalates_to_a_timed_418_ban():
    clock = FakeClock()
    injector = FaultInjector(FaultPlan(retry_after_s=2, ban_after_429s=3, ban_s=60), clock=clock)
    injector.throttle("127.0.0.2")
    assert injector.refuse("127.0.0.3", "ws") is None  # other IPs unaffected
    assert [injector.refuse("127.0.0.2", "rest") for _ in range(3)] == [(429, 2)] * 3
    assert injector.refuse("127.0.0.2", "ws") == (418, 60)  # banned after the third 429
    clock.now = 30
    assert injector.refuse("127.0.0.2", "rest") == (418, 30)  # Retry-After counts down
    clock.now = 61
    injector.throttle("127.0.0.2", on=False)
    assert injector.refuse("127.0.0.2", "rest") is None  # the ban expired
    assert injector.counts == Counter({"rest_429": 3, "ws_418": 1, "rest_418": 1, "bans": 1})


def test_explicit_bans():
    injector = FaultInjector(FaultPlan(banned_ips={"127.0.0.4"}, ban_s=120))
    assert injector.refuse("127.0.0.4", "ws") == (418, 120)
    injector.unban("127.0.0.4")
    assert injector.refuse("127.0.0.4", "ws") is None
    injector.ban("127.0.0.5", 10)
    assert injector.is_banned("127.0.0.5")
