"""Discrete-event simulation of one engine replica under Poisson traffic of several
request classes, on the shared `Scheduler` with a virtual clock. Reports TTFT and ITL
percentiles per class (ITL is per token, weighted like vLLM's inter-token histogram)."""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from ouzel.inference.planner.perf import EngineRequest, PerfRow, Scheduler
from ouzel.inference.planner.workload import RequestClass

WARMUP_SHARE = 0.1  # the first 10% of simulated time fills the queues; not counted


@dataclass(frozen=True)
class ClassStats:
    name: str
    requests: int
    ttft_p50_ms: float
    ttft_p95_ms: float
    itl_p50_ms: float
    itl_p95_ms: float

    def meets(self, request_class: RequestClass) -> bool:
        return (
            self.ttft_p95_ms <= request_class.slo.ttft_p95_ms
            and self.itl_p95_ms <= request_class.slo.itl_p95_ms
        )


@dataclass(frozen=True)
class SimResult:
    classes: list[ClassStats]
    simulated_s: float
    saturated: bool  # the queue kept growing: latencies are lower bounds
    kv_peak: float
    steps: int

    def by_name(self, name: str) -> ClassStats:
        return next(c for c in self.classes if c.name == name)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(0, min(len(sorted_values) - 1, math.ceil(fraction * len(sorted_values)) - 1))
    return float(sorted_values[rank])


def weighted_percentile(weights: dict[float, int], fraction: float) -> float:
    """Percentile of values each repeated `weight` times (step durations × tokens)."""
    total = sum(weights.values())
    if not total:
        return math.nan
    target = fraction * total
    seen = 0
    ordered = sorted(weights.items())
    for value, weight in ordered:
        seen += weight
        if seen >= target:
            return value
    return ordered[-1][0]


def _count_itl(
    bins: list[dict[float, int]], duration_ms: float, tokens_by_class: Sequence[int], steps: int
) -> None:
    key = round(duration_ms, 2)
    for index, tokens in enumerate(tokens_by_class):
        if tokens:
            bins[index][key] = bins[index].get(key, 0) + tokens * steps


def simulate(
    row: PerfRow,
    classes: Sequence[RequestClass],
    rates: Sequence[float],
    hits: Sequence[float] | None = None,
    seed: int = 1,
    max_requests: int = 3000,
    max_seconds: float = 1200.0,
    min_seconds: float = 60.0,
    min_per_class: int = 120,
) -> SimResult:
    """Poisson arrivals per class at `rates` (requests/s) into one replica.

    Duration: long enough for `max_requests` arrivals and `min_per_class` arrivals of
    the rarest class, within [min_seconds, max_seconds] of simulated time. Cancelled ghost-text requests
    do their prefill and one token, then leave; they load the engine but are not in TTFT.
    """
    rng = random.Random(seed)
    hits = list(hits) if hits is not None else [c.prefix_hit for c in classes]
    total_rate = sum(rates)
    if total_rate <= 0:
        raise ValueError("the total request rate must be positive")
    # Enough simulated time for `max_requests` arrivals and for `min_per_class` of the
    # rarest class (p95 of a handful of chat requests is noise), within the bounds.
    rarest = min(rate for rate in rates if rate > 0)
    horizon = min(max(max_requests / total_rate, min_per_class / rarest, min_seconds), max_seconds)
    arrivals: list[tuple[float, int, EngineRequest, bool]] = []
    for index, (request_class, rate) in enumerate(zip(classes, rates, strict=True)):
        if rate <= 0:
            continue
        t = rng.expovariate(rate)
        while t < horizon:
            prompt = min(request_class.prompt.sample(rng), row.kv_tokens // 2)
            cancelled = rng.random() < request_class.cancel_share
            output = 1 if cancelled else request_class.output.sample(rng)
            request = EngineRequest(
                prompt_tokens=prompt,
                max_tokens=max(1, min(output, row.kv_tokens - prompt)),
                cached_tokens=int(prompt * hits[index]),
                cls=index,
                arrival=t,
            )
            arrivals.append((t, request.id, request, cancelled))
            t += rng.expovariate(rate)
    heapq.heapify(arrivals)
    return _run(row, classes, arrivals, horizon)


def _run(
    row: PerfRow,
    classes: Sequence[RequestClass],
    arrivals: list[tuple[float, int, EngineRequest, bool]],
    horizon: float,
) -> SimResult:
    scheduler = Scheduler(row, classes=len(classes))
    warmup = horizon * WARMUP_SHARE
    ttfts: list[list[float]] = [[] for _ in classes]
    # Token-weighted step durations per class, binned to 0.01 ms.
    itl_steps: list[dict[float, int]] = [{} for _ in classes]
    counted: list[int] = [0] * len(classes)
    cancelled_ids: set[int] = set()
    kv_peak = 0.0
    # Stop at the horizon plus a drain allowance; a queue still growing then is saturation.
    deadline = horizon * 1.5 + 5.0
    while (arrivals or not scheduler.idle) and scheduler.now < deadline:
        if scheduler.idle and arrivals and arrivals[0][0] > scheduler.now:
            scheduler.now = arrivals[0][0]
        while arrivals and arrivals[0][0] <= scheduler.now:
            _, _, request, cancelled = heapq.heappop(arrivals)
            if cancelled:
                cancelled_ids.add(request.id)
            scheduler.add(request)
        start = scheduler.now
        steps, seconds = scheduler.fast_forward(arrivals[0][0] if arrivals else math.inf)
        if steps:
            if start >= warmup:
                _count_itl(itl_steps, seconds * 1000 / steps, scheduler.decodes_by_class(), steps)
            continue
        step = scheduler.step()
        kv_peak = max(kv_peak, scheduler.kv_usage)
        if start >= warmup:
            _count_itl(itl_steps, step.duration_s * 1000, step.decodes_by_class, 1)
        for request in step.first_tokens:
            if request.arrival >= warmup and request.id not in cancelled_ids:
                ttfts[request.cls].append(
                    (request.first_token or 0) - request.arrival + row.request_ms / 1000
                )
                counted[request.cls] += 1
    saturated = bool(arrivals) or len(scheduler.waiting) > 0
    stats = []
    for index, request_class in enumerate(classes):
        values = sorted(v * 1000 for v in ttfts[index])
        stats.append(
            ClassStats(
                request_class.name,
                counted[index],
                percentile(values, 0.5),
                math.inf if saturated else percentile(values, 0.95),
                weighted_percentile(itl_steps[index], 0.5),
                weighted_percentile(itl_steps[index], 0.95),
            )
        )
    return SimResult(stats, scheduler.now, saturated, kv_peak, scheduler.step_index)
