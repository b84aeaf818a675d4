"""The plan search: GPU type × tensor parallel × replicas, cheapest first, every SLO met.

Replicas sit behind a router that splits traffic evenly, so one replica sees 1/r of each
class's Poisson traffic (a split Poisson stream is Poisson). With a prefix-aware router a
session's prefix stays on its replica; with round-robin it is found there 1 time in r
(`routed_hit`). Each candidate gets an analytic screen first (fits in memory? can an idle
replica meet the SLO? how many replicas does prefill compute alone need?), then
simulations from that lower bound up, galloping then bisecting on the replica count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from ouzel.inference.planner.hardware import GPUS, MODELS, GpuSpec, ModelSpec, derived_row, fits
from ouzel.inference.planner.perf import PerfRow
from ouzel.inference.planner.simulate import SimResult, simulate
from ouzel.inference.planner.workload import RequestClass, Team, WorkloadError, routed_hit

T = TypeVar("T")
HOURS_PER_MONTH = 730
WORKDAYS_PER_MONTH = 22
TARGET_PREFILL_UTILISATION = 0.8


class PlanError(ValueError):
    """No plan can be made; the message says what to change."""


@dataclass(frozen=True)
class Candidate:
    model: ModelSpec
    gpu: GpuSpec
    tp: int
    row: PerfRow

    @property
    def label(self) -> str:
        return f"{self.model.name} on {self.gpu.name} TP{self.tp}"


@dataclass
class PlanOption:
    candidate: Candidate
    replicas: int
    result: SimResult
    meets: bool
    replicas_round_robin: int | None = None

    @property
    def gpus(self) -> int:
        return self.replicas * self.candidate.tp

    @property
    def cost_per_hour(self) -> float:
        return self.gpus * self.candidate.gpu.price_per_hour


@dataclass
class Rejected:
    candidate_label: str
    reason: str


@dataclass
class PlanReport:
    team: Team
    options: list[PlanOption]  # feasible, cheapest first
    rejected: list[Rejected] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> PlanOption:
        if not self.options:
            raise PlanError(self.explain_infeasible())
        return self.options[0]

    def explain_infeasible(self) -> str:
        lines = ["no candidate meets every SLO:"]
        lines += [f"  {r.candidate_label}: {r.reason}" for r in self.rejected]
        lines.append(
            "try a smaller model, a faster GPU, a larger tensor-parallel size, more replicas "
            "(--max-replicas), or looser SLOs"
        )
        return "\n".join(lines)


def candidates(
    models: Sequence[str],
    gpus: Sequence[str],
    tps: Sequence[int],
    rows: Mapping[tuple[str, str, int], PerfRow] | None = None,
) -> tuple[list[Candidate], list[Rejected]]:
    """Every model × GPU × TP whose weights fit; measured rows replace derived ones."""
    rows = rows or {}
    found, rejected = [], []
    for model_name in models:
        model = _lookup(MODELS, model_name, "model")
        for gpu_name in gpus:
            gpu = _lookup(GPUS, gpu_name, "GPU")
            for tp in tps:
                if tp < 1 or tp & (tp - 1):
                    raise PlanError(f"tensor-parallel sizes are powers of two, got {tp}")
                label = f"{model.name} on {gpu.name} TP{tp}"
                if (model.name, gpu.name, tp) in rows:
                    found.append(Candidate(model, gpu, tp, rows[(model.name, gpu.name, tp)]))
                elif fits(model, gpu, tp):
                    found.append(Candidate(model, gpu, tp, derived_row(model, gpu, tp)))
                else:
                    rejected.append(
                        Rejected(
                            label,
                            f"{model.weights_bytes / 1e9:.0f} GB of weights leave no room for KV cache on {tp}× {gpu.memory_gb:.0f} GB",
                        )
                    )
    return found, rejected


def _lookup(table: Mapping[str, T], name: str, what: str) -> T:
    if name not in table:
        raise PlanError(f"unknown {what} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def idle_latency_ms(row: PerfRow, prompt_tokens: int, cached_tokens: int) -> tuple[float, float]:
    """(TTFT, ITL) of one request on an idle replica: chunked prefill, then one decode."""
    remaining = prompt_tokens - cached_tokens
    done = cached_tokens
    ttft = row.request_ms
    while remaining > 0:
        chunk = min(row.max_batched_tokens, remaining)
        kctx = (done * chunk + chunk * chunk / 2) / 1_000_000
        ttft += row.step_ms(chunk, kctx, 0, 0.0)
        done += chunk
        remaining -= chunk
    itl = row.step_ms(0, 0.0, 1, prompt_tokens / 1000)
    return ttft, itl


def screen(candidate: Candidate, team: Team) -> str | None:
    """Why no replica count can help (None when the candidate is worth simulating)."""
    row = candidate.row
    for c in team.classes:
        prompt = min(c.prompt.p95(), row.kv_tokens - c.output.high)
        if prompt < c.prompt.low:
            return f"{c.name}: {c.prompt.low} + {c.output.high} tokens do not fit in {row.kv_tokens} KV tokens"
        ttft, itl = idle_latency_ms(row, prompt, int(prompt * c.prefix_hit))
        if ttft > c.slo.ttft_p95_ms:
            return f"{c.name}: TTFT {ttft:.0f} ms on an idle replica for a {prompt}-token prompt > SLO {c.slo.ttft_p95_ms:.0f} ms"
        if itl > c.slo.itl_p95_ms:
            return f"{c.name}: ITL {itl:.1f} ms on an idle replica > SLO {c.slo.itl_p95_ms:.0f} ms"
    return None


def prefill_replicas_lower_bound(row: PerfRow, team: Team) -> int:
    """Replicas needed for prefill compute alone to stay under 80% busy."""
    busy = 0.0
    for c, rate in zip(team.classes, team.rates(), strict=True):
        uncached = c.prompt.mean() * (1 - c.prefix_hit)
        busy += rate * uncached * row.flop_ms_per_token / 1000
    return max(1, math.ceil(busy / TARGET_PREFILL_UTILISATION))


def evaluate(
    candidate: Candidate,
    team: Team,
    replicas: int,
    prefix_aware: bool = True,
    seed: int = 1,
    max_requests: int = 1500,
) -> SimResult:
    rates = [r / replicas for r in team.rates()]
    hits = [routed_hit(c, replicas, prefix_aware) for c in team.classes]
    return simulate(candidate.row, team.classes, rates, hits, seed=seed, max_requests=max_requests)


def _meets(result: SimResult, classes: Iterable[RequestClass]) -> bool:
    return not result.saturated and all(
        s.meets(c) for s, c in zip(result.classes, classes, strict=True)
    )


def min_replicas(
    candidate: Candidate, team: Team, max_replicas: int, prefix_aware: bool = True
) -> tuple[int, SimResult] | None:
    """The fewest replicas meeting every SLO (None above `max_replicas`)."""
    low = prefill_replicas_lower_bound(candidate.row, team)
    if low > max_replicas:
        return None
    tried: dict[int, SimResult] = {}

    def ok(replicas: int) -> bool:
        tried[replicas] = evaluate(candidate, team, replicas, prefix_aware)
        return _meets(tried[replicas], team.classes)

    failing = low - 1
    replicas = low
    while not ok(replicas):  # gallop
        failing = replicas
        if replicas >= max_replicas:
            return None
        replicas = min(max_replicas, max(replicas + 1, math.ceil(replicas * 1.5)))
    while replicas - failing > 1:  # bisect between the last failure and the success
        middle = (failing + replicas) // 2
        if ok(middle):
            replicas = middle
        else:
            failing = middle
    return replicas, tried[replicas]


def plan(
    team: Team,
    models: Sequence[str],
    gpus: Sequence[str],
    tps: Sequence[int] = (1, 2, 4),
    rows: Mapping[tuple[str, str, int], PerfRow] | None = None,
    max_replicas: int = 32,
    prices: Mapping[str, float] | None = None,
) -> PlanReport:
    """The cheapest plans meeting every SLO, with the reasons others were dropped."""
    if not models or not gpus:
        raise PlanError("name at least one model and one GPU")
    if any(rate <= 0 for rate in team.rates()) and sum(team.rates()) <= 0:
        raise WorkloadError("the team sends no requests")
    found, rejected = candidates(models, gpus, tps, rows)
    if prices:
        found = [_with_price(c, prices) for c in found]
    notes: list[str] = []
    screened = []
    for candidate in found:
        reason = screen(candidate, team)
        if reason:
            rejected.append(Rejected(candidate.label, reason))
        else:
            screened.append(candidate)
    # Cheapest lower bound first; stop simulating a candidate whose floor costs more than
    # 1.5× the best plan found.
    screened.sort(
        key=lambda c: prefill_replicas_lower_bound(c.row, team) * c.tp * c.gpu.price_per_hour
    )
    options: list[PlanOption] = []
    for candidate in screened:
        floor = (
            prefill_replicas_lower_bound(candidate.row, team)
            * candidate.tp
            * candidate.gpu.price_per_hour
        )
        if options and floor > 1.5 * min(o.cost_per_hour for o in options):
            notes.append(f"{candidate.label}: not simulated, costs at least ${floor:.2f}/h")
            continue
        found_replicas = min_replicas(candidate, team, max_replicas)
        if found_replicas is None:
            rejected.append(Rejected(candidate.label, f"needs more than {max_replicas} replicas"))
            continue
        replicas, result = found_replicas
        options.append(PlanOption(candidate, replicas, result, True))
    options.sort(key=lambda o: (o.cost_per_hour, o.gpus))
    report = PlanReport(team, options, rejected, notes)
    if options:
        best = options[0]
        # Round-robin splits each session over r replicas, so hits fade to zero as r grows:
        # when an idle replica without hits misses an SLO, no replica count can help.
        no_hits = replace(team, classes=tuple(replace(c, prefix_hit=0.0) for c in team.classes))
        reason = screen(best.candidate, no_hits)
        if reason:
            report.notes.append(f"without a prefix-aware router: {reason}")
        else:
            round_robin = min_replicas(best.candidate, team, max_replicas * 2, prefix_aware=False)
            best.replicas_round_robin = round_robin[0] if round_robin else None
    return report


def _with_price(candidate: Candidate, prices: Mapping[str, float]) -> Candidate:
    price = prices.get(candidate.gpu.name)
    if price is None:
        return candidate
    if price <= 0:
        raise PlanError(f"the price of {candidate.gpu.name} must be positive")
    return replace(
        candidate, gpu=replace(candidate.gpu, price_per_hour=price, price_source="config")
    )
