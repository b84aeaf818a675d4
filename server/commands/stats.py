"""`ouzel stats`: how completions went, from the local telemetry file.

Acceptance rate, latency percentiles per kind of answer (cold, KV-reused, type-through
cache), cache hit rate and the share of prompt tokens served from the KV cache.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ouzel.server.cli import Command, register

KIND_LABELS = {
    "cold": "cold",
    "reused": "KV-reused",
    "cache": "type-through cache",
    "speculative": "speculative (after an accept)",
}


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", type=Path, help="telemetry file (default: the state folder's)")
    parser.add_argument("--days", type=float, help="only the last DAYS days")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _run(args: argparse.Namespace) -> int:
    from ouzel.server.features.telemetry import read_events, summarize, telemetry_path

    path: Path = args.file or telemetry_path()
    since = time.time() - args.days * 86400 if args.days else None
    summary = summarize(read_events(path), since)
    report = _report(summary)
    if args.json:
        print(json.dumps({"file": str(path), **report}, indent=2))
        return 0
    if not summary.served:
        print(f"No completions recorded yet in {path}.")
        return 0
    _print_table(path, report)
    return 0


def _report(summary: Any) -> dict[str, Any]:
    from ouzel.server.features.telemetry import percentile

    latency = {}
    for kind, values in sorted(summary.latencies_ms.items()):
        latency[kind] = {
            "count": len(values),
            "p50Ms": percentile(values, 0.5),
            "p95Ms": percentile(values, 0.95),
        }
    return {
        "served": summary.served,
        "suggestions": len(summary.served_ids),
        "modelCalls": summary.model_calls,
        "shown": len(summary.shown_ids),
        "accepted": len(summary.accepted_ids),
        "partiallyAccepted": len(summary.partial_ids),
        "acceptanceRate": summary.acceptance_rate,
        "acceptedWholeOrInPart": summary.any_acceptance_rate,
        "cacheHitRate": summary.cache_hit_rate,
        "reusedPromptShare": summary.reused_share,
        "latency": latency,
        "from": summary.first_ts,
        "to": summary.last_ts,
    }


def _print_table(path: Path, report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()

    def share(value: float | None) -> str:
        return "–" if value is None else f"{value:.0%}"

    overview = Table(title="ouzel completions", caption=str(path), show_header=False)
    overview.add_column(style="bold")
    overview.add_column(justify="right")
    overview.add_row("answers served (type-through included)", str(report["served"]))
    overview.add_row("distinct suggestions", str(report["suggestions"]))
    overview.add_row("model calls", str(report["modelCalls"]))
    overview.add_row("suggestions shown", str(report["shown"]))
    overview.add_row("accepted", str(report["accepted"]))
    overview.add_row("partially accepted", str(report["partiallyAccepted"]))
    overview.add_row("acceptance rate", share(report["acceptanceRate"]))
    overview.add_row("accepted whole or in part", share(report["acceptedWholeOrInPart"]))
    overview.add_row("type-through cache hit rate", share(report["cacheHitRate"]))
    overview.add_row("prompt tokens from the KV cache", share(report["reusedPromptShare"]))
    console.print(overview)

    latency = Table(title="latency (server side, ms)")
    for column in ("kind", "count", "p50", "p95"):
        latency.add_column(column, justify="left" if column == "kind" else "right")
    for kind, row in report["latency"].items():
        latency.add_row(
            KIND_LABELS.get(kind, kind),
            str(row["count"]),
            f"{row['p50Ms']:.1f}",
            f"{row['p95Ms']:.1f}",
        )
    console.print(latency)


register(Command("stats", "completion statistics from local telemetry", _arguments, _run))
