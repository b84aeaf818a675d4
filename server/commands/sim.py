"""`ouzel sim`: a GPU-free vLLM stand-in (OpenAI-compatible, latency from the planner's
engine model) for tests, dashboards and planning experiments."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ouzel.server.cli import Command, register


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--served-model-name", default="ouzel-sim", help="model name clients ask for"
    )
    parser.add_argument(
        "--model", default="qwen2.5-coder-7b", help="model whose derived row sets the latency"
    )
    parser.add_argument("--gpu", default="L40S", help="GPU type of the derived row (default L40S)")
    parser.add_argument("--tp", type=int, default=1, help="tensor-parallel size (default 1)")
    parser.add_argument(
        "--row", type=Path, help="benchmark rows file (JSON lines): use its last row instead"
    )
    parser.add_argument(
        "--api-key-env", metavar="VAR", help="require the key in this environment variable"
    )
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="share of requests answered 500"
    )
    parser.add_argument(
        "--stall-rate",
        type=float,
        default=0.0,
        help="share of streams that stall after the first token",
    )
    parser.add_argument("--stall-seconds", type=float, default=0.0, help="length of a stall")
    parser.add_argument(
        "--disconnect-rate", type=float, default=0.0, help="share of streams cut mid-way"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the fault dice")


def _run(args: argparse.Namespace) -> int:
    from ouzel.inference.planner.hardware import GPUS, MODELS, derived_row
    from ouzel.inference.planner.workload import WorkloadError
    from ouzel.inference.sim.server import Faults, SimSettings, serve
    from ouzel.server.remote import is_loopback_host as loopback

    try:
        if args.row:
            from ouzel.inference.planner.config import load_rows

            rows = list(load_rows(args.row).values())
            if not rows:
                raise WorkloadError(f"{args.row} holds no benchmark rows")
            row = rows[-1]
        else:
            if args.model not in MODELS or args.gpu not in GPUS:
                raise WorkloadError(
                    f"unknown model or GPU; models: {', '.join(MODELS)}; GPUs: {', '.join(GPUS)}"
                )
            row = derived_row(MODELS[args.model], GPUS[args.gpu], args.tp)
        faults = Faults(
            args.error_rate, args.stall_rate, args.stall_seconds, args.disconnect_rate
        ).validated()
    except (WorkloadError, ValueError) as exc:
        print(f"ouzel sim: {exc}", file=sys.stderr)
        return 2
    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            print(
                f"ouzel sim: the API key variable {args.api_key_env} is not set (or empty)",
                file=sys.stderr,
            )
            return 2
    if not loopback(args.host):
        print(
            f"ouzel sim: warning: listening on {args.host}, reachable from other machines",
            file=sys.stderr,
        )
    settings = SimSettings(
        row=row, model=args.served_model_name, api_key=key, faults=faults, seed=args.seed
    )
    serve(settings, args.host, args.port)
    return 0


register(
    Command(
        "sim",
        "run a GPU-free vLLM stand-in (OpenAI-compatible, modelled latency)",
        _arguments,
        _run,
    )
)
