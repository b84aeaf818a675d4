"""The team and its traffic: three request classes with token distributions, rates per
active developer, prefix-cache hit rates and SLOs. Defaults are documented assumptions
(docs/PLAN.md gives each source); `from_telemetry` replaces the ghost-text ones with what
ouzel recorded on this machine."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class WorkloadError(ValueError):
    """A workload or team description that cannot be planned; the message says why."""


@dataclass(frozen=True)
class TokenDist:
    """Uniform between `low` and `high`, or log-normal with `median` whose 95th
    percentile is `high` (clipped to [low, high × 2])."""

    low: int
    high: int
    median: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high:
            raise WorkloadError(f"token range needs 1 ≤ low ≤ high, got {self.low}..{self.high}")
        if self.median is not None and not self.low <= self.median <= self.high:
            raise WorkloadError(f"median {self.median} is outside {self.low}..{self.high}")

    def sample(self, rng: random.Random) -> int:
        if self.median is None or self.median == self.high:
            return rng.randint(self.low, self.high)
        sigma = math.log(self.high / self.median) / 1.645
        value = rng.lognormvariate(math.log(self.median), sigma)
        return int(min(max(value, self.low), self.high * 2))

    def p95(self) -> int:
        if self.median is None or self.median == self.high:
            return int(self.low + 0.95 * (self.high - self.low))
        return self.high

    def mean(self) -> float:
        if self.median is None or self.median == self.high:
            return (self.low + self.high) / 2
        sigma = math.log(self.high / self.median) / 1.645
        return min(self.median * math.exp(sigma * sigma / 2), self.high * 2)


@dataclass(frozen=True)
class Slo:
    ttft_p95_ms: float
    itl_p95_ms: float


@dataclass(frozen=True)
class RequestClass:
    name: str
    per_active_dev_per_min: float  # started requests (prefills), not shown results
    prompt: TokenDist
    output: TokenDist
    prefix_hit: float  # share of prompt tokens found in the prefix cache
    slo: Slo
    cancel_share: float = 0.0  # aborted by the client after the first token (ghost text)
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.per_active_dev_per_min < 0:
            raise WorkloadError(f"{self.name}: the request rate cannot be negative")
        for label, value in (("prefix_hit", self.prefix_hit), ("cancel_share", self.cancel_share)):
            if not 0 <= value <= 1:
                raise WorkloadError(f"{self.name}: {label} must be within 0..1, got {value}")
        if self.slo.ttft_p95_ms <= 0 or self.slo.itl_p95_ms <= 0:
            raise WorkloadError(f"{self.name}: SLOs must be positive")


GHOST = RequestClass(
    "ghost",
    12.0,
    TokenDist(1024, 2048),
    TokenDist(8, 64, 24),
    0.6,
    Slo(200, 30),
    cancel_share=0.6,
    sources=(
        "rate: one started request per 5 s of active typing (prvn.sh/hosting-your-own-coding-llm)",
        "prompt: 1-2k tokens (Continue 1,024 max; llama.vim 256/64 lines; GPU-ANCHORS §6)",
        "output: ≤ 64 (Tabby max 64)",
        "cancel 60%: most requests are cut by the next keystroke (Copilot, QCon SF 2024); assumption",
        "prefix hit 60%: the file prefix is re-sent on every pause; assumption until measured",
        "SLO: TTFT p95 ≤ 200 ms (Copilot mean < 200 ms); ITL p95 ≤ 30 ms so 64 tokens show in < 2 s",
    ),
)
CHAT = RequestClass(
    "chat",
    0.3,
    TokenDist(1000, 10000, 3000),
    TokenDist(100, 1000, 350),
    0.3,
    Slo(1000, 60),
    sources=(
        "rate: one chat or code action per ~3 min of active use; assumption",
        "prompt 1-10k, output 200-1,000 (seed docs/traffic_and_slos.md experience classes)",
        "prefix hit 30%: system prompt + the open file; assumption",
        "SLO: TTFT p95 ≤ 1 s; ITL p95 ≤ 60 ms (faster than reading)",
    ),
)
AGENT = RequestClass(
    "agent",
    0.75,
    TokenDist(4000, 28000, 12000),
    TokenDist(50, 1500, 300),
    0.9,
    Slo(5000, 100),
    sources=(
        "rate: 25% of active developers run an agent, 3 turns/min (15 s tool time between turns, llm-d agentic preset)",
        "prompt: 3k system + repo context + 1.5k per turn, capped for a 32k-context model (llm-d preset scaled down)",
        "output: mean ~425 (llm-d preset)",
        "prefix hit 90%: every turn re-sends the previous turns; requires a prefix-aware router",
        "SLO: TTFT p95 ≤ 5 s (agent turns wait seconds anyway); ITL p95 ≤ 100 ms",
    ),
)
DEFAULT_CLASSES = (GHOST, CHAT, AGENT)


@dataclass(frozen=True)
class Team:
    developers: int = 40
    active_share: float = 0.5  # share of developers working with the assistant in the busiest hour
    working_hours: float = 9.0  # per working day, for the daily volume and office-hours cost
    classes: tuple[RequestClass, ...] = DEFAULT_CLASSES
    sources: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.developers < 1:
            raise WorkloadError("developers must be at least 1")
        if not 0 < self.active_share <= 1:
            raise WorkloadError(f"active_share must be within (0, 1], got {self.active_share}")
        if not 0 < self.working_hours <= 24:
            raise WorkloadError(f"working_hours must be within (0, 24], got {self.working_hours}")
        if not self.classes:
            raise WorkloadError("at least one request class is needed")

    @property
    def active(self) -> float:
        return self.developers * self.active_share

    def rates(self) -> list[float]:
        """Started requests per second per class at the busiest hour."""
        return [self.active * c.per_active_dev_per_min / 60 for c in self.classes]

    def with_class(self, updated: RequestClass) -> Team:
        classes = tuple(updated if c.name == updated.name else c for c in self.classes)
        return replace(self, classes=classes)


def routed_hit(request_class: RequestClass, replicas: int, prefix_aware: bool) -> float:
    """Prefix hit rate behind a router: a prefix-aware router sends a session back to the
    replica holding its prefix; round-robin finds it there one time in `replicas`."""
    if prefix_aware or replicas <= 1:
        return request_class.prefix_hit
    return request_class.prefix_hit / replicas


def from_telemetry(
    team: Team, events: Iterable[Mapping[str, Any]], idle_gap_s: float = 120.0
) -> tuple[Team, list[str]]:
    """Ghost-text figures from ouzel's own completion telemetry (`model`, `served`,
    `shown` events): started prefills per active minute, prompt and output token ranges,
    prefix reuse, and the share never shown. Returns the team and notes on what changed."""
    calls: list[Mapping[str, Any]] = []
    shown = 0
    for event in events:
        kind = event.get("event")
        if kind == "model" and isinstance(event.get("ts"), (int, float)):
            calls.append(event)
        elif kind == "shown":
            shown += 1
    if len(calls) < 20:
        raise WorkloadError(
            f"the telemetry holds {len(calls)} model calls; at least 20 are needed "
            "(type with ouzel for a while, or plan without --from-telemetry)"
        )
    calls.sort(key=lambda e: float(e["ts"]))
    active_s = 0.0
    sessions = 1  # runs of calls without an idle gap; each has one call fewer than gaps
    for before, after in itertools.pairwise(calls):
        gap = float(after["ts"]) - float(before["ts"])
        if gap <= idle_gap_s:
            active_s += gap
        else:
            sessions += 1
    active_s = max(active_s, 60.0)
    prompts = sorted(int(e.get("promptTokens") or 0) for e in calls if e.get("promptTokens"))
    outputs = sorted(int(e.get("generatedTokens") or 0) for e in calls if e.get("generatedTokens"))
    reused = sum(int(e.get("reusedTokens") or 0) for e in calls)
    total_prompt = sum(prompts) or 1
    ghost = next((c for c in team.classes if c.name == "ghost"), GHOST)
    rate = (len(calls) - sessions) / (active_s / 60)
    prompt = _dist_of(prompts, ghost.prompt)
    output = _dist_of(outputs, ghost.output)
    cancel = min(0.95, max(0.0, 1 - shown / len(calls))) if shown else ghost.cancel_share
    updated = replace(
        ghost,
        per_active_dev_per_min=rate,
        prompt=prompt,
        output=output,
        prefix_hit=min(0.99, reused / total_prompt),
        cancel_share=cancel,
        sources=(
            f"ouzel telemetry: {len(calls)} model calls over {active_s / 60:.0f} active minutes",
        ),
    )
    notes = [
        f"ghost text from telemetry: {rate:.1f} started prefills per active minute, prompt "
        f"{prompt.low}-{prompt.high} tokens (median {prompt.median}), output {output.low}-{output.high}, "
        f"prefix reuse {updated.prefix_hit:.0%}, not shown {cancel:.0%}"
    ]
    if not shown:
        notes.append(
            "no `shown` events (the client does not report them): cancel share kept at the default"
        )
    return team.with_class(updated), notes


def _dist_of(values: list[int], fallback: TokenDist) -> TokenDist:
    if len(values) < 5:
        return fallback
    low = max(1, values[len(values) // 20])
    high = max(low, values[min(len(values) - 1, len(values) * 19 // 20)])
    median = min(max(values[len(values) // 2], low), high)
    return TokenDist(low, high, median)
