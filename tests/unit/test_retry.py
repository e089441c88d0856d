import random
import statistics

import pytest

from connectors.retry import Backoff, BreakerState, CircuitBreaker, CircuitOpen


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_full_jitter_stays_under_the_exponential_ceiling():
    backoff = Backoff(0.5, 30.0, rng=random.Random(7))
    ceilings = []
    for _ in range(10):
        ceiling = backoff.ceiling()
        delay = backoff.next_delay()
        assert 0.0 <= delay <= ceiling
        ceilings.append(ceiling)
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    backoff.reset()
    assert backoff.ceiling() == 0.5


def test_full_jitter_spreads_delays_over_the_whole_range():
    # thousands of shards losing their sockets at once must not reconnect in lockstep
    delays = [Backoff(1.0, 8.0, rng=random.Random(seed)).next_delay() for seed in range(2000)]
    assert min(delays) < 0.05 and max(delays) > 0.95
    assert statistics.mean(delays) == pytest.approx(0.5, abs=0.05)


def test_retry_after_is_a_floor():
    backoff = Backoff(0.1, 1.0, rng=random.Random(1))
    assert backoff.next_delay(at_least=7.0) == 7.0


def test_breaker_opens_after_threshold_then_half_opens_one_probe():
    clock = FakeClock()
    breaker = CircuitBreaker("t-open", failure_threshold=3, reset_timeout_s=10, clock=clock)
    for _ in range(2):
        breaker.record_failure()
        assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    assert breaker.retry_in() == pytest.approx(10)
    with pytest.raises(CircuitOpen):
        breaker.check()
    clock.now += 10
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.record_failure()  # probe failed: open again for a full period
    assert breaker.state is BreakerState.OPEN and breaker.retry_in() == pytest.approx(10)
    clock.now += 10
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.failures == 0 and breaker.allow()


def test_success_resets_the_failure_count():
    breaker = CircuitBreaker("t-reset", failure_threshold=2, reset_timeout_s=1, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
