"""Calibrate `ouzel sim` against a real server here and print the error per rate.

1. Start `python -m llama_cpp.server` with the embedded gemma3 270M model (loopback, key).
2. `ouzel plan measure` against it (the library call): synchronous fit → a `measured`
   row, then a Poisson rate ladder (TTFT/ITL p50/p95 per rate).
3. Start `ouzel sim --row` with that row and run the same ladder (same rates, seeds,
   prompts) against it over HTTP; also predict the ladder with the planner's DES.
4. Print measured vs sim vs DES per rate, the relative errors, and the load average
   (the machine is shared: other processes change the real server's speed).

llama_cpp.server runs one request at a time (no continuous batching), so this checks
the per-token costs and the queueing, not batch interference (that needs a vLLM run).

Two comparisons: A, one fit for the whole run (what a user gets); B, the synchronous fit
repeated right before each rate, which takes the shared machine's drift out and checks
the queueing model alone.

    python benchmarks/sim_calibration.py [--rates 4] [--seconds-per-rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "inference"))
from real_servers import LlamaServer, free_port  # noqa: E402

from ouzel.inference.planner.config import append_row  # noqa: E402
from ouzel.inference.planner.measure import (  # noqa: E402
    MIN_REQUESTS_PER_RATE,
    Client,
    LadderPoint,
    measure,
    prompt_set,
    run_rate,
)
from ouzel.inference.planner.perf import PerfRow  # noqa: E402
from ouzel.inference.planner.simulate import simulate  # noqa: E402
from ouzel.inference.planner.workload import RequestClass, Slo, TokenDist  # noqa: E402

KEY = "calibration-key"


def start_sim(rows: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OUZEL_SIM_KEY": KEY}
    command = [
        sys.executable,
        "-m",
        "ouzel.server.cli",
        "sim",
        "--row",
        str(rows),
        "--port",
        str(port),
        "--api-key-env",
        "OUZEL_SIM_KEY",
        "--served-model-name",
        "calibration",
    ]
    process = subprocess.Popen(
        command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"ouzel sim did not start: {log.read_text()[-2000:]}")


async def ladder_against(
    base_url: str,
    rates: list[float],
    seconds: float,
    prompt_tokens: int,
    output_tokens: int,
    first_seed: int = 10,
) -> list[LadderPoint]:
    client = Client(base_url, KEY, None)
    try:
        prompts = await prompt_set(client, prompt_tokens, seed=2)
        return [
            await run_rate(
                client,
                prompts,
                rate,
                max(seconds, MIN_REQUESTS_PER_RATE / rate),
                output_tokens,
                seed=first_seed + i,
            )
            for i, rate in enumerate(rates)
        ]
    finally:
        await client.aclose()


async def sync_ttft(base_url: str, prompt_tokens: int, output_tokens: int) -> float:
    """Median TTFT (ms) of 5 requests sent one at a time, as in the fit."""
    client = Client(base_url, KEY, None)
    try:
        prompts = await prompt_set(client, prompt_tokens, seed=2)
        samples = [
            await client.stream(prompts.next(), output_tokens, prompts.tokens) for _ in range(5)
        ]
    finally:
        await client.aclose()
    return sorted(s.ttft_s * 1000 for s in samples)[2]


def error(model: float, truth: float) -> str:
    return f"{(model - truth) / truth * 100:+.0f}%" if truth else "-"


def sim_ladder(
    folder: Path,
    rows: list[PerfRow],
    rates: list[float],
    args: argparse.Namespace,
    prompt_tokens: int,
) -> list[LadderPoint]:
    """The ladder against `ouzel sim`: one server for one row, or one server per rate."""
    points: list[LadderPoint] = []
    groups = (
        [(rows[0], rates)]
        if len(rows) == 1
        else [(row, [rate]) for row, rate in zip(rows, rates, strict=True)]
    )
    for index, (row, group_rates) in enumerate(groups):
        path = folder / f"rows-{len(rows)}-{index}.jsonl"
        append_row(path, row)
        port = free_port()
        sim = start_sim(path, port, folder / "sim.log")
        try:
            points += asyncio.run(
                ladder_against(
                    f"http://127.0.0.1:{port}/v1",
                    group_rates,
                    args.seconds_per_rate,
                    prompt_tokens,
                    args.output_tokens,
                    first_seed=10 + index,
                )
            )
        finally:
            sim.terminate()
            sim.wait(10)
    return points


def des_ladder(rows: list[PerfRow], rates: list[float], prompt: int, output: int) -> list[float]:
    one = RequestClass(
        "bench", 1.0, TokenDist(prompt, prompt), TokenDist(output, output), 0.0, Slo(1e9, 1e9)
    )
    pairs = zip(rows * len(rates) if len(rows) == 1 else rows, rates, strict=False)
    return [
        simulate(row, [one], [rate], seed=3, max_requests=2000).classes[0].ttft_p95_ms
        for row, rate in pairs
    ]


def print_table(
    console: Console, title: str, real: list[LadderPoint], fake: list[LadderPoint], des: list[float]
) -> float:
    table = Table(title=title)
    for column in (
        "rate/s",
        "n",
        "TTFT p50 real",
        "sim",
        "err",
        "TTFT p95 real",
        "sim",
        "err",
        "DES p95",
        "err",
        "ITL p50 real",
        "sim",
        "err",
        "ITL p95 real",
        "sim",
        "err",
    ):
        table.add_column(column, justify="right")
    worst = 0.0
    for truth_point, sim_point, predicted in zip(real, fake, des, strict=True):
        cells = [f"{truth_point.rate:.3f}", str(truth_point.requests)]
        for truth, model in (
            (truth_point.ttft_p50_ms, sim_point.ttft_p50_ms),
            (truth_point.ttft_p95_ms, sim_point.ttft_p95_ms),
        ):
            cells += [f"{truth:.0f}", f"{model:.0f}", error(model, truth)]
            worst = max(worst, abs(model - truth) / truth)
        cells += [f"{predicted:.0f}", error(predicted, truth_point.ttft_p95_ms)]
        for truth, model in (
            (truth_point.itl_p50_ms, sim_point.itl_p50_ms),
            (truth_point.itl_p95_ms, sim_point.itl_p95_ms),
        ):
            cells += [f"{truth:.1f}", f"{model:.1f}", error(model, truth)]
            worst = max(worst, abs(model - truth) / truth)
        table.add_row(*cells)
    console.print(table)
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", type=int, default=4)
    parser.add_argument("--seconds-per-rate", type=float, default=20.0)
    parser.add_argument("--prompt-tokens", type=int, default=96)
    parser.add_argument("--output-tokens", type=int, default=12)
    args = parser.parse_args()
    console = Console(width=max(Console().width, 200))
    load_before = os.getloadavg()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with LlamaServer(KEY, folder / "llama.log") as server:
            measured = asyncio.run(
                measure(
                    server.base_url,
                    KEY,
                    None,
                    "cpu-here",
                    1,
                    args.prompt_tokens,
                    args.output_tokens,
                    args.rates,
                    args.seconds_per_rate,
                    progress=lambda line: console.print(f"[dim]{line}[/dim]"),
                    refit_each_rate=True,
                )
            )
            # The synchronous requests again: how far did this shared box's speed drift?
            drift_ms = asyncio.run(
                sync_ttft(server.base_url, measured.prompt_tokens, args.output_tokens)
            )
        load_mid = os.getloadavg()
        rates = [p.rate for p in measured.ladder]
        prompt = measured.prompt_tokens
        one_fit = sim_ladder(folder, [measured.row], rates, args, prompt)
        per_rate = sim_ladder(folder, measured.rows_per_rate, rates, args, prompt)
    load_after = os.getloadavg()
    row = measured.row
    console.print(
        f"measured row: request {row.request_ms:.1f} ms + {row.flop_ms_per_token:.3f} ms/prompt token, decode step {row.weights_ms:.1f} ms, max_num_seqs {row.max_num_seqs}; {'; '.join(measured.notes)}; ladder prompts {prompt} tokens, {args.output_tokens} out"
    )
    console.print(
        "refits before each rate: "
        + ", ".join(
            f"{r.request_ms + r.flop_ms_per_token * prompt:.0f} ms prefill + {r.weights_ms:.0f} ms/token"
            for r in measured.rows_per_rate
        )
    )
    worst_one = print_table(
        console,
        "A. one fit for the run: ouzel sim vs llama_cpp.server (gemma3 270M), ms",
        measured.ladder,
        one_fit,
        des_ladder([row], rates, prompt, args.output_tokens),
    )
    worst_each = print_table(
        console,
        "B. refit right before each rate (drift of the shared box taken out)",
        measured.ladder,
        per_rate,
        des_ladder(measured.rows_per_rate, rates, prompt, args.output_tokens),
    )
    fitted_ms = row.request_ms + max(row.weights_ms, prompt * row.flop_ms_per_token)
    console.print(
        f"real server drift: synchronous TTFT {fitted_ms:.0f} ms in the fit, {drift_ms:.0f} ms after the ladder"
    )
    console.print(
        f"worst sim error: A {worst_one * 100:.0f}%, B {worst_each * 100:.0f}% (target ≤ 15%); load average "
        f"{load_before[0]:.1f} → {load_mid[0]:.1f} → {load_after[0]:.1f} on {os.cpu_count()} cores; {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
