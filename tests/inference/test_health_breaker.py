"""Circuit breaker, health records and the probe loop, on a fake clock."""

from __future__ import annotations

from waiting import wait_until

from ouzel.inference.health import (
    BackendHealth,
    BreakerState,
    CircuitBreaker,
    HealthMonitor,
    ProbeResult,
    probe_once,
)
from ouzel.inference.types import BackendError, BackendUnavailable, BackendWarming


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_repeated_failures_and_recovers_through_one_trial() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, retry_after_s=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == 10
    clock.now += 10
    assert breaker.allow()  # the one trial
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # nobody else while the trial runs
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow() and breaker.failures == 0


def test_failed_trial_reopens_for_twice_as_long_up_to_a_cap() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, retry_after_s=100, clock=clock)
    breaker.record_failure()
    waits = []
    for _ in range(4):
        clock.now += breaker.retry_in()
        assert breaker.allow()
        breaker.record_failure()
        waits.append(breaker.retry_after_s)
    assert waits == [200, 300, 300, 300]
    clock.now += 300
    assert breaker.allow()
    breaker.record_success()
    assert breaker.retry_after_s == 100


def test_cancelled_trial_frees_the_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, retry_after_s=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


def test_successful_probe_turns_open_into_half_open() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, retry_after_s=60, clock=clock)
    breaker.record_failure()
    assert not breaker.would_allow()
    breaker.probe_succeeded()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()


def test_loading_is_not_a_failure_and_speeds_are_averaged() -> None:
    clock = Clock()
    health = BackendHealth("gpu", CircuitBreaker(2, 10, clock), clock=clock)
    for _ in range(5):
        assert not health.request_failed(BackendWarming("loading the model"))
    assert health.breaker.state is BreakerState.CLOSED
    assert health.state_text() == "loading"
    health.request_succeeded(first_token_s=0.2, generated_tokens=11, total_s=1.2)
    assert health.ttft_s == 0.2 and health.tokens_per_s == 10.0
    health.request_succeeded(first_token_s=0.4, generated_tokens=11, total_s=1.4)
    assert abs((health.ttft_s or 0) - 0.26) < 1e-9
    assert health.state_text() == "ok"
    assert health.request_failed(BackendError("boom"))
    assert health.request_failed(BackendError("boom again"))
    assert health.state_text().startswith("down (retry in 10")
    snapshot = health.snapshot()
    assert snapshot["lastError"] == "boom again"
    assert snapshot["timeToFirstTokenMs"] == 260.0
    assert snapshot["failures"] == 2


class FlakyServer:
    def __init__(self) -> None:
        self.up = False
        self.probes = 0

    async def probe(self) -> ProbeResult:
        self.probes += 1
        if not self.up:
            raise BackendUnavailable("cannot reach http://127.0.0.1:9/v1 (connection refused)")
        return ProbeResult(models=("m",), latency_s=0.003)


async def test_probe_failures_open_the_breaker_and_a_good_probe_allows_a_trial() -> None:
    clock = Clock()
    server = FlakyServer()
    health = BackendHealth("gpu", CircuitBreaker(2, 30, clock), clock=clock)
    await probe_once(server, health)
    await probe_once(server, health)
    assert health.breaker.state is BreakerState.OPEN
    assert health.reachable is False and "connection refused" in (health.last_error or "")
    server.up = True
    await probe_once(server, health)
    assert health.breaker.state is BreakerState.HALF_OPEN
    assert health.reachable is True and health.served_models == ("m",)
    assert health.probe_latency_s == 0.003


async def test_monitor_probes_down_servers_more_often() -> None:
    clock = Clock()
    server = FlakyServer()
    health = BackendHealth("gpu", CircuitBreaker(1, 4, clock), clock=clock)
    monitor = HealthMonitor(lambda: [(server, health)], interval_s=lambda: 60)
    await monitor.probe_due()
    await monitor.probe_due()
    assert server.probes == 1  # first round at once, then not due for a while
    clock.now += 2  # down: probed every retry_after/2 = 2 s (not every 60 s)
    await monitor.probe_due()
    assert server.probes == 2
    assert health.breaker.retry_in() == 4  # a failed probe keeps it open for longer
    server.up = True
    clock.now += 2
    await monitor.probe_due()
    assert server.probes == 3 and health.reachable
    assert health.breaker.state is BreakerState.HALF_OPEN
    clock.now += 30  # up: the normal interval applies
    await monitor.probe_due()
    assert server.probes == 3
    clock.now += 30
    await monitor.probe_due()
    assert server.probes == 4


async def test_the_monitor_loop_probes_until_stopped() -> None:
    server = FlakyServer()
    health = BackendHealth("gpu", CircuitBreaker(1, 4, Clock()), clock=Clock())
    monitor = HealthMonitor(lambda: [(server, health)], interval_s=lambda: 60, tick_s=0.01)
    monitor.start()
    try:
        await wait_until(lambda: server.probes == 1, 10, "the first probe round")
    finally:
        await monitor.stop()
    assert not monitor.running
