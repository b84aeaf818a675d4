"""What `ouzel plan` prints and writes: the table (rich), the latency-vs-rate plot (PNG),
the `vllm serve` command (built by `ouzel.inference.gpu`) and deploy values (YAML for
compose or Helm)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ouzel.inference.gpu import KeySource, VllmOptions, build_vllm_command, tool_call_parser_for
from ouzel.inference.planner.search import (
    HOURS_PER_MONTH,
    WORKDAYS_PER_MONTH,
    PlanOption,
    PlanReport,
    evaluate,
)

PLOT_RATE_FACTORS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


def _ms(value: float) -> str:
    return "sat." if math.isinf(value) else "-" if math.isnan(value) else f"{value:.0f}"


def table(report: PlanReport, limit: int = 8) -> Table:
    classes = report.team.classes
    slos = ", ".join(
        f"{c.name} ≤ {c.slo.ttft_p95_ms:.0f} / {c.slo.itl_p95_ms:.0f}" for c in classes
    )
    out = Table(
        title=f"Plans for {report.team.developers} developers ({report.team.active:.0f} active at peak), cheapest first",
        caption=f"p95 TTFT / ITL in ms per class; SLOs: {slos}",
    )
    for name in ("model", "GPU", "TP", "replicas", "GPUs", "$/h", "$/month"):
        out.add_column(name, justify="right" if name not in ("model", "GPU") else "left")
    for c in classes:
        out.add_column(c.name, justify="right")
    out.add_column("row", justify="left")
    for option in report.options[:limit]:
        candidate = option.candidate
        cells = [
            candidate.model.name,
            candidate.gpu.name,
            str(candidate.tp),
            str(option.replicas),
            str(option.gpus),
            f"{option.cost_per_hour:.2f}",
            f"{option.cost_per_hour * HOURS_PER_MONTH:,.0f}",
        ]
        cells += [f"{_ms(s.ttft_p95_ms)} / {s.itl_p95_ms:.0f}" for s in option.result.classes]
        cells.append(candidate.row.provenance)
        out.add_row(*cells)
    return out


def summary_lines(report: PlanReport) -> list[str]:
    best = report.best
    team = report.team
    rates = ", ".join(
        f"{c.name} {rate:.2f}/s" for c, rate in zip(team.classes, team.rates(), strict=True)
    )
    lines = [
        f"peak traffic: {rates} (started requests; cancelled ghost text included)",
        f"plan: {best.replicas} × {best.candidate.label} = {best.gpus} GPU(s), ${best.cost_per_hour:.2f}/h "
        f"(${best.cost_per_hour * HOURS_PER_MONTH:,.0f}/month always on, "
        f"${best.cost_per_hour * team.working_hours * WORKDAYS_PER_MONTH:,.0f}/month office hours only)",
    ]
    if best.replicas_round_robin is not None and best.replicas_round_robin != best.replicas:
        lines.append(
            f"without a prefix-aware router (round-robin): {best.replicas_round_robin} replicas "
            f"({best.replicas_round_robin * best.candidate.tp} GPUs): prefixes land on a replica that lacks them"
        )
    elif best.replicas_round_robin is None and not any("prefix-aware" in n for n in report.notes):
        lines.append(
            "without a prefix-aware router no replica count up to the limit meets the SLOs"
        )
    lines.append(f"benchmark row: {best.candidate.row.provenance}; {best.candidate.row.source}")
    return lines


def print_report(report: PlanReport, console: Console) -> None:
    console.print(table(report))
    for line in summary_lines(report):
        console.print(line)
    for rejected in report.rejected:
        console.print(f"[dim]dropped {rejected.candidate_label}: {rejected.reason}[/dim]")
    for note in report.notes:
        console.print(f"[dim]{note}[/dim]")


def vllm_command(option: PlanOption, key_env: str = "VLLM_API_KEY", port: int = 8000) -> str:
    """The `vllm serve` line for one replica of the plan."""
    candidate = option.candidate
    row = candidate.row
    extra = [
        "--tensor-parallel-size",
        str(candidate.tp),
        "--max-num-seqs",
        str(row.max_num_seqs),
        "--max-num-batched-tokens",
        str(row.max_batched_tokens),
        "--gpu-memory-utilization",
        "0.90",
    ]
    launch = build_vllm_command(
        VllmOptions(
            weights=candidate.model.hf_id,
            served_model_name=candidate.model.name,
            host="0.0.0.0",  # inside a container; the deploy values publish it on loopback
            port=port,
            max_model_len=candidate.model.max_context,
            tool_call_parser=tool_call_parser_for(candidate.model.hf_id),
            key=KeySource(env=key_env),
            extra=tuple(extra),
        )
    )
    return launch.shell_line()


def deploy_values(option: PlanOption) -> dict[str, Any]:
    """Values for the team-server compose file or Helm chart."""
    candidate = option.candidate
    row = candidate.row
    return {
        "model": {
            "name": candidate.model.name,
            "weights": candidate.model.hf_id,
            "maxModelLen": candidate.model.max_context,
        },
        "replicaCount": option.replicas,
        "resources": {"limits": {"nvidia.com/gpu": candidate.tp}},
        "nodeSelector": {"nvidia.com/gpu.product": candidate.gpu.name},
        "vllm": {
            "tensorParallelSize": candidate.tp,
            "maxNumSeqs": row.max_num_seqs,
            "maxNumBatchedTokens": row.max_batched_tokens,
            "gpuMemoryUtilization": 0.9,
            "enablePrefixCaching": True,
            "apiKeySecret": "vllm-api-key",
        },
        "router": {
            "policy": "prefix-aware",
            "note": "llm-d EPP prefix-cache scorer or production-stack prefixaware",
        },
        "autoscaling": {
            "metric": "vllm:num_requests_waiting",
            "threshold": 5,
            "minReplicas": option.replicas,
        },
        "plan": {
            "gpus": option.gpus,
            "costPerHour": round(option.cost_per_hour, 2),
            "benchmarkRow": row.provenance,
        },
    }


def write_plot(report: PlanReport, path: Path, plans: int = 3) -> Path:
    """TTFT p95 per class vs total request rate (× the team's peak), one line per plan."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    team = report.team
    classes = team.classes
    figure, axes = plt.subplots(1, len(classes), figsize=(5 * len(classes), 4), squeeze=False)
    peak = sum(team.rates())
    for option in report.options[:plans]:
        curves: list[list[float]] = [[] for _ in classes]
        for factor in PLOT_RATE_FACTORS:
            scaled = _scaled_team(report, factor)
            result = evaluate(option.candidate, scaled, option.replicas, max_requests=800)
            for index, stats in enumerate(result.classes):
                curves[index].append(
                    stats.ttft_p95_ms if not math.isinf(stats.ttft_p95_ms) else math.nan
                )
        rates = [peak * f for f in PLOT_RATE_FACTORS]
        label = f"{option.replicas}× {option.candidate.label}"
        for index, curve in enumerate(curves):
            axes[0][index].plot(rates, curve, marker="o", label=label)
    for index, c in enumerate(classes):
        ax = axes[0][index]
        ax.axhline(c.slo.ttft_p95_ms, color="red", linestyle="--", linewidth=1, label="SLO")
        ax.axvline(peak, color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"{c.name}: TTFT p95")
        ax.set_xlabel("total started requests/s")
        ax.set_ylabel("ms")
        ax.set_yscale("log")
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _scaled_team(report: PlanReport, factor: float) -> Any:
    from dataclasses import replace

    team = report.team
    return replace(
        team,
        classes=tuple(
            replace(c, per_active_dev_per_min=c.per_active_dev_per_min * factor)
            for c in team.classes
        ),
    )
