"""Backend health: a circuit breaker per backend, probes, and speed figures.

- The breaker opens after `failure_threshold` failures in a row; an open backend is skipped
  until `retry_after_s` has passed, then one trial request (half-open) decides: success
  closes it, failure opens it again for twice as long (capped at `MAX_RETRY_AFTER_S`).
- A model that is still loading or warming up (`BackendWarming`, HTTP 503 "loading") is
  skipped for that request but never counted as a failure.
- Probes are cheap `GET /v1/models` calls that count like requests: failed probes open the
  breaker before any user request has to fail, and a probe that succeeds while the
  breaker is open lets the next request through as the trial.
- Time to first token and tokens/s are exponentially weighted averages per backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from ouzel.inference.types import BackendError, BackendWarming

log = logging.getLogger("ouzel.inference.health")

MAX_RETRY_AFTER_S = 300.0
EWMA_WEIGHT = 0.3  # weight of the newest sample


class BreakerState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Closed → open after repeated failures → half-open trial → closed or open again."""

    def __init__(
        self,
        failure_threshold: int = 3,
        retry_after_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.base_retry_after_s = retry_after_s
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.failures = 0  # in a row
        self.retry_after_s = retry_after_s
        self.opened_at = 0.0
        self._trial_running = False

    def configure(self, failure_threshold: int, retry_after_s: float) -> None:
        self.failure_threshold = failure_threshold
        if retry_after_s != self.base_retry_after_s:
            self.base_retry_after_s = retry_after_s
            self.retry_after_s = min(self.retry_after_s, retry_after_s)

    def allow(self) -> bool:
        """May a request go to this backend now? Claims the trial slot when half-open."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if self.retry_in() > 0:
                return False
            self.state = BreakerState.HALF_OPEN
        if self._trial_running:
            return False
        self._trial_running = True
        return True

    def would_allow(self) -> bool:
        """Like `allow` without claiming anything (for status and selection previews)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and self.retry_in() > 0:
            return False
        return not self._trial_running

    def retry_in(self) -> float:
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.opened_at + self.retry_after_s - self.clock())

    def record_success(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.retry_after_s = self.base_retry_after_s
        self._trial_running = False

    def record_failure(self) -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN:
            self.retry_after_s = min(self.retry_after_s * 2, MAX_RETRY_AFTER_S)
            self._open()
        elif self.state is BreakerState.CLOSED and self.failures >= self.failure_threshold:
            self._open()
        elif self.state is BreakerState.OPEN:
            self.opened_at = self.clock()  # still down (a probe said so): wait again

    def release(self) -> None:
        """The request ended without a verdict (cancelled, or the server was still loading)."""
        self._trial_running = False

    def probe_succeeded(self) -> None:
        """The server answers again: let the next request through as the trial."""
        if self.state is BreakerState.OPEN:
            self.state = BreakerState.HALF_OPEN
            self._trial_running = False

    def _open(self) -> None:
        self.state = BreakerState.OPEN
        self.opened_at = self.clock()
        self._trial_running = False


@dataclass(frozen=True)
class ProbeResult:
    models: tuple[str, ...]
    latency_s: float


@runtime_checkable
class Probeable(Protocol):
    """A backend that can be checked cheaply without generating (remote servers)."""

    async def probe(self) -> ProbeResult: ...


@dataclass
class BackendHealth:
    """What we know about one backend; shown by `ouzel/status` and `ouzel doctor`."""

    name: str
    breaker: CircuitBreaker
    clock: Callable[[], float] = time.monotonic
    reachable: bool | None = None  # None: not probed or used yet
    loading: bool = False
    last_error: str | None = None
    last_error_at: float | None = None  # monotonic clock
    last_ok_at: float | None = None
    probe_latency_s: float | None = None
    served_models: tuple[str, ...] = ()
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    requests: int = 0
    failures: int = 0
    probe_failures: int = 0
    warmed: bool = False  # served at least one request since it was created
    last_probe_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # --- outcomes of real requests -----------------------------------------------------

    def request_succeeded(
        self, first_token_s: float | None, generated_tokens: int, total_s: float
    ) -> None:
        self.breaker.record_success()
        self.requests += 1
        self.warmed = True
        self.reachable = True
        self.loading = False
        self.last_ok_at = self.clock()
        if first_token_s is not None:
            self.ttft_s = _ewma(self.ttft_s, first_token_s)
        generating_s = total_s - (first_token_s or 0.0)
        if generated_tokens > 1 and generating_s > 0:
            self.tokens_per_s = _ewma(self.tokens_per_s, (generated_tokens - 1) / generating_s)

    def request_failed(self, error: BaseException) -> bool:
        """Record a failure; returns True when it counted against the breaker."""
        self.requests += 1
        self._note_error(error)
        if isinstance(error, BackendWarming):
            self.loading = True
            self.breaker.release()
            return False
        self.failures += 1
        self.breaker.record_failure()
        return True

    def request_abandoned(self) -> None:
        """Cancelled by the user: says nothing about the backend."""
        self.breaker.release()

    # --- probes ------------------------------------------------------------------------

    def probe_succeeded(self, result: ProbeResult) -> None:
        self.last_probe_at = self.clock()
        self.reachable = True
        self.loading = False
        self.probe_latency_s = result.latency_s
        self.served_models = result.models
        self.breaker.probe_succeeded()

    def probe_failed(self, error: BaseException) -> None:
        self.last_probe_at = self.clock()
        self._note_error(error)
        self.loading = isinstance(error, BackendWarming)
        if not self.loading:
            self.probe_failures += 1
            self.breaker.record_failure()

    def _note_error(self, error: BaseException) -> None:
        self.reachable = False if not isinstance(error, BackendWarming) else self.reachable
        self.last_error = str(error) or type(error).__name__
        self.last_error_at = self.clock()

    # --- summaries ---------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self.breaker.would_allow()

    def state_text(self) -> str:
        if self.loading:
            return "loading"
        if self.breaker.state is BreakerState.OPEN:
            return f"down (retry in {self.breaker.retry_in():.0f} s)"
        if self.breaker.state is BreakerState.HALF_OPEN:
            return "retrying"
        if self.reachable is False:
            return "failing"
        if self.reachable is None:
            return "unknown"
        return "ok"

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able summary (for `ouzel/status`)."""
        now = self.clock()
        return {
            "state": self.state_text(),
            "breaker": self.breaker.state.value,
            "reachable": self.reachable,
            "lastError": self.last_error,
            "lastErrorAgoS": _round(now - self.last_error_at) if self.last_error_at else None,
            "probeLatencyMs": _ms(self.probe_latency_s),
            "timeToFirstTokenMs": _ms(self.ttft_s),
            "tokensPerSecond": _round(self.tokens_per_s),
            "requests": self.requests,
            "failures": self.failures,
            "servedModels": list(self.served_models),
            **self.extra,
        }


def _ewma(old: float | None, sample: float) -> float:
    return sample if old is None else (1 - EWMA_WEIGHT) * old + EWMA_WEIGHT * sample


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


async def probe_once(backend: Probeable, health: BackendHealth) -> None:
    """Probe `backend` and record the outcome in `health` (never raises BackendError)."""
    try:
        result = await backend.probe()
    except BackendError as exc:
        health.probe_failed(exc)
        log.info("probe of %s failed: %s", health.name, exc)
        return
    health.probe_succeeded(result)


class HealthMonitor:
    """Probes remote backends every `interval_s`, and every `retry_after_s` while down.

    `targets()` returns the (backend, health) pairs to watch now; the monitor asks again
    on every round, so settings changes need no restart.
    """

    def __init__(
        self,
        targets: Callable[[], Iterable[tuple[Probeable, BackendHealth]]],
        interval_s: Callable[[], float],
        tick_s: float = 1.0,
    ) -> None:
        self._targets = targets
        self._interval_s = interval_s
        self._tick_s = tick_s
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start probing on the running event loop (once)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ouzel-probes")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def probe_due(self) -> None:
        """One round: probe every target that is due now (the loop runs one per tick)."""
        due = [pair for pair in self._targets() if self._due(pair[1])]
        if due:
            await asyncio.gather(*(probe_once(backend, health) for backend, health in due))

    async def _run(self) -> None:
        while True:
            try:
                await self.probe_due()
            except Exception:  # a bug in one round must not end probing for the process
                log.exception("probing the model servers failed")
            await asyncio.sleep(self._tick_s)

    def _due(self, health: BackendHealth) -> bool:
        if health.last_probe_at is None:
            return True
        breaker = health.breaker
        period = self._interval_s()
        if breaker.state is BreakerState.OPEN or health.loading or health.reachable is False:
            period = min(period, max(breaker.retry_after_s / 2, 1.0))
        return health.clock() - health.last_probe_at >= period
