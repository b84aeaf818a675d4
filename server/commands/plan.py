"""`ouzel plan`: size the GPU box for a team (table, plot, `vllm serve`, deploy values);
`ouzel plan measure --endpoint URL`: measure a server and write a benchmark row."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from ouzel.server.cli import Command, register


def benchmarks_path() -> Path:
    from ouzel.server.logs import state_dir

    return state_dir() / "plan-benchmarks.jsonl"


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        choices=["measure"],
        help="`measure`: sweep an endpoint and record a benchmark row",
    )
    parser.add_argument(
        "--config", type=Path, help="TOML file with [team], [classes.*], [candidates], [prices]"
    )
    parser.add_argument("--developers", type=int, help="developers in the team (default 40)")
    parser.add_argument(
        "--active-share",
        type=float,
        help="share of developers active in the busiest hour (default 0.5)",
    )
    parser.add_argument("--working-hours", type=float, help="working hours per day (default 9)")
    parser.add_argument(
        "--model",
        dest="models",
        action="append",
        help="candidate model (repeat); or the served model for `measure`",
    )
    parser.add_argument(
        "--gpu",
        dest="gpus",
        action="append",
        help="candidate GPU type (repeat); for `measure`: the label of the measured box",
    )
    parser.add_argument(
        "--tp", dest="tps", type=int, action="append", help="tensor-parallel size (repeat)"
    )
    parser.add_argument(
        "--max-replicas", type=int, help="largest replica count to consider (default 32)"
    )
    parser.add_argument("--ghost-ttft-ms", type=float, help="ghost-text TTFT p95 SLO (default 200)")
    parser.add_argument("--chat-ttft-ms", type=float, help="chat TTFT p95 SLO (default 1000)")
    parser.add_argument(
        "--from-telemetry",
        action="store_true",
        help="ghost-text traffic from ouzel's local completion telemetry",
    )
    parser.add_argument("--telemetry-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--benchmarks",
        type=Path,
        help="benchmark rows (JSON lines; default: the state folder's plan-benchmarks.jsonl)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("ouzel-plan"),
        help="folder for plan.png and values.yaml (default ./ouzel-plan)",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    # measure
    parser.add_argument("--endpoint", help="measure: OpenAI-compatible base URL (…/v1)")
    parser.add_argument(
        "--api-key-env", metavar="VAR", help="measure: environment variable holding the API key"
    )
    parser.add_argument(
        "--prompt-tokens", type=int, default=256, help="measure: prompt length (default 256)"
    )
    parser.add_argument(
        "--output-tokens", type=int, default=24, help="measure: tokens per answer (default 24)"
    )
    parser.add_argument(
        "--rates", type=int, default=5, help="measure: points in the rate ladder (default 5)"
    )
    parser.add_argument(
        "--seconds-per-rate",
        type=float,
        default=20.0,
        help="measure: seconds at each rate (default 20)",
    )


def _run(args: argparse.Namespace) -> int:
    from ouzel.inference.planner.measure import MeasureError
    from ouzel.inference.planner.search import PlanError
    from ouzel.inference.planner.workload import WorkloadError

    try:
        if args.action == "measure":
            return _measure(args)
        return _plan(args)
    except (PlanError, WorkloadError, MeasureError) as exc:
        print(f"ouzel plan: {exc}", file=sys.stderr)
        return 1


def _plan(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from rich.console import Console

    from ouzel.inference.planner import report
    from ouzel.inference.planner.config import PlanInputs, load_config, load_rows
    from ouzel.inference.planner.search import plan
    from ouzel.inference.planner.workload import Slo, WorkloadError, from_telemetry

    started = time.perf_counter()
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console = Console(width=160)
    inputs = load_config(args.config) if args.config else PlanInputs()
    team = inputs.team
    changes = {
        k: v
        for k, v in (
            ("developers", args.developers),
            ("active_share", args.active_share),
            ("working_hours", args.working_hours),
        )
        if v is not None
    }
    team = replace(team, **changes)
    for name, ttft in (("ghost", args.ghost_ttft_ms), ("chat", args.chat_ttft_ms)):
        if ttft is not None:
            base = next(c for c in team.classes if c.name == name)
            team = team.with_class(replace(base, slo=Slo(ttft, base.slo.itl_p95_ms)))
    if args.from_telemetry:
        from ouzel.server.features.telemetry import read_events, telemetry_path

        path = args.telemetry_file or telemetry_path()
        if not path.exists():
            raise WorkloadError(
                f"no telemetry at {path}: use ouzel with `telemetry` on, or plan without --from-telemetry"
            )
        team, notes = from_telemetry(team, read_events(path))
        for note in notes:
            console.print(note)
    rows = load_rows(args.benchmarks or benchmarks_path())
    result = plan(
        team,
        models=args.models or inputs.models,
        gpus=args.gpus or inputs.gpus,
        tps=args.tps or inputs.tps,
        rows=rows,
        max_replicas=args.max_replicas or inputs.max_replicas,
        prices=inputs.prices,
    )
    if not result.options:
        print(f"ouzel plan: {result.explain_infeasible()}", file=sys.stderr)
        return 1
    report.print_report(result, console)
    best = result.best
    console.print("\n[bold]vllm serve[/bold] (one replica):")
    console.print(report.vllm_command(best), soft_wrap=True, highlight=False)
    console.print(
        "[dim]--host 0.0.0.0 is for inside the container: publish the port on 127.0.0.1 "
        "(SSH tunnel) or behind a TLS proxy, never on a public address[/dim]"
    )
    import yaml

    args.out.mkdir(parents=True, exist_ok=True)
    values = args.out / "values.yaml"
    values.write_text(yaml.safe_dump(report.deploy_values(best), sort_keys=False), encoding="utf-8")
    console.print(f"\ndeploy values: {values}")
    console.print(values.read_text(encoding="utf-8"), highlight=False)
    if not args.no_plot:
        plot = report.write_plot(result, args.out / "plan.png")
        console.print(f"plot: {plot}")
    console.print(f"[dim]planned in {time.perf_counter() - started:.1f} s[/dim]")
    return 0


def _measure(args: argparse.Namespace) -> int:
    from ouzel.inference.planner.config import append_row
    from ouzel.inference.planner.measure import MeasureError, measure

    if not args.endpoint:
        raise MeasureError("`ouzel plan measure` needs --endpoint URL")
    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise MeasureError(f"the API key variable {args.api_key_env} is not set (or empty)")
    gpu = (args.gpus or ["unknown-gpu"])[0]
    tp = (args.tps or [1])[0]
    model = (args.models or [None])[0]
    try:
        result = asyncio.run(
            measure(
                args.endpoint,
                key,
                model,
                gpu,
                tp,
                args.prompt_tokens,
                args.output_tokens,
                args.rates,
                args.seconds_per_rate,
                progress=lambda line: print(line, file=sys.stderr),
            )
        )
    except MeasureError:
        raise
    except Exception as exc:  # the endpoint is down or answers garbage
        raise MeasureError(
            f"the sweep against {args.endpoint} failed: {type(exc).__name__}: {exc}"
        ) from exc
    path = args.benchmarks or benchmarks_path()
    ladder = [point.__dict__ for point in result.ladder]
    append_row(path, result.row, {"ladder": ladder, "notes": result.notes})
    print(
        f"wrote a measured row for {result.row.model} on {result.row.gpu} TP{result.row.tp} to {path}"
    )
    return 0


register(
    Command(
        "plan", "size the GPU box for a team (`ouzel plan`, `ouzel plan measure`)", _arguments, _run
    )
)
