"""The plan search and `ouzel plan` end to end: the cheapest plan meets every SLO, an
impossible team gets a clear message, config and flags, telemetry, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ouzel.inference.planner.config import inputs_from, load_rows
from ouzel.inference.planner.search import PlanError, evaluate, plan
from ouzel.inference.planner.workload import GHOST, Slo, Team, WorkloadError, from_telemetry

OUZEL = str(Path(sys.executable).with_name("ouzel"))
SMALL = dict(models=["qwen2.5-coder-7b"], gpus=["L4", "L40S", "H100"], tps=[1, 2])


def test_the_cheapest_plan_meets_every_slo_and_one_replica_less_does_not() -> None:
    team = Team(developers=60)
    report = plan(team, **SMALL)
    best = report.best
    costs = [o.cost_per_hour for o in report.options]
    assert costs == sorted(costs)
    for stats, c in zip(best.result.classes, team.classes, strict=True):
        assert stats.meets(c), (stats, c.slo)
    if best.replicas > 1:
        fewer = evaluate(best.candidate, team, best.replicas - 1)
        assert fewer.saturated or not all(
            s.meets(c) for s, c in zip(fewer.classes, team.classes, strict=True)
        )


def test_more_developers_never_need_fewer_gpus() -> None:
    small = plan(Team(developers=10), models=["qwen2.5-coder-7b"], gpus=["L40S"], tps=[1]).best
    large = plan(Team(developers=120), models=["qwen2.5-coder-7b"], gpus=["L40S"], tps=[1]).best
    assert large.gpus > small.gpus


def test_an_impossible_slo_gets_a_clear_message() -> None:
    team = Team().with_class(GHOST.__class__(**{**GHOST.__dict__, "slo": Slo(5, 30)}))
    report = plan(team, **SMALL)
    assert report.options == []
    with pytest.raises(PlanError, match=r"no candidate meets every SLO[\s\S]*ghost: TTFT"):
        _ = report.best


def test_unknown_names_and_bad_numbers_are_refused() -> None:
    with pytest.raises(PlanError, match="unknown GPU 'B200'"):
        plan(Team(), models=["qwen2.5-coder-7b"], gpus=["B200"])
    with pytest.raises(PlanError, match="powers of two"):
        plan(Team(), models=["qwen2.5-coder-7b"], gpus=["L4"], tps=[3])
    with pytest.raises(WorkloadError, match="active_share"):
        Team(active_share=1.5)
    with pytest.raises(WorkloadError, match="unknown key"):
        inputs_from({"team": {"developpers": 3}})
    with pytest.raises(WorkloadError, match="must be a number"):
        inputs_from({"team": {"developers": "forty"}})
    with pytest.raises(WorkloadError, match="whole number"):
        inputs_from({"team": {"developers": 40.5}})
    assert inputs_from({"team": {"developers": 40.0}}).team.developers == 40
    with pytest.raises(WorkloadError, match="unknown class"):
        inputs_from({"classes": {"review": {}}})


def test_telemetry_sets_the_ghost_text_traffic() -> None:
    events = []
    for i in range(60):  # one model call every 3 s for 3 minutes, 1/3 of them shown
        events.append(
            {
                "ts": 1000.0 + 3 * i,
                "event": "model",
                "promptTokens": 1200 + i,
                "reusedTokens": 900,
                "generatedTokens": 20,
            }
        )
        if i % 3 == 0:
            events.append({"ts": 1000.5 + 3 * i, "event": "shown", "id": str(i)})
    events.append(
        {
            "ts": 99999.0,
            "event": "model",
            "promptTokens": 1300,
            "reusedTokens": 0,
            "generatedTokens": 20,
        }
    )
    team, notes = from_telemetry(Team(), events)
    ghost = team.classes[0]
    assert ghost.per_active_dev_per_min == pytest.approx(
        20, rel=0.05
    )  # the idle gap is not active time
    assert 1200 <= ghost.prompt.low <= ghost.prompt.median <= ghost.prompt.high <= 1300
    assert ghost.prefix_hit == pytest.approx(0.72, abs=0.02)
    assert ghost.cancel_share == pytest.approx(2 / 3, abs=0.02)
    assert "telemetry" in notes[0]
    with pytest.raises(WorkloadError, match="at least 20"):
        from_telemetry(Team(), events[:5])


def test_a_broken_benchmark_rows_file_names_the_line(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"model": "m"}\n', encoding="utf-8")
    with pytest.raises(WorkloadError, match=r"rows.jsonl:1: not a benchmark row"):
        load_rows(rows)
    assert load_rows(tmp_path / "missing.jsonl") == {}


def run_plan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
        "XDG_STATE_HOME": str(cwd / "state"),
        "COLUMNS": "250",
    }
    return subprocess.run(
        [OUZEL, "plan", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_ouzel_plan_end_to_end_with_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "team.toml"
    config.write_text(
        """
[team]
developers = 25
active_share = 0.6
[candidates]
models = ["qwen2.5-coder-7b"]
gpus = ["L40S", "H100"]
tp = [1]
[prices]
H100 = 9.0
[classes.chat]
ttft_p95_ms = 1500
prompt = { low = 1000, high = 8000, median = 2500 }
""",
        encoding="utf-8",
    )
    done = run_plan("--config", str(config), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Plans for 25 developers (15 active at peak)" in out
    assert "chat ≤ 1500 / 60" in out
    assert "vllm serve Qwen/Qwen2.5-Coder-7B-Instruct" in out and "--tensor-parallel-size 1" in out
    assert "L40S" in out.split("plan:")[1].splitlines()[0]  # H100 at $9/h is dearer than L40S
    png = (tmp_path / "out" / "plan.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    values = (tmp_path / "out" / "values.yaml").read_text(encoding="utf-8")
    assert "nvidia.com/gpu.product: L40S" in values and "enablePrefixCaching: true" in values


def test_ouzel_plan_reads_telemetry_and_refuses_bad_input(tmp_path: Path) -> None:
    telemetry = tmp_path / "completions.jsonl"
    lines = [
        json.dumps(
            {
                "ts": 10.0 + 4 * i,
                "event": "model",
                "promptTokens": 1500,
                "reusedTokens": 1200,
                "generatedTokens": 16,
            }
        )
        for i in range(40)
    ]
    telemetry.write_text("\n".join(lines) + "\nnot json\n", encoding="utf-8")
    done = run_plan(
        "--from-telemetry",
        "--telemetry-file",
        str(telemetry),
        "--model",
        "qwen2.5-coder-7b",
        "--gpu",
        "H100",
        "--tp",
        "1",
        "--no-plot",
        "--out",
        str(tmp_path / "o"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "ghost text from telemetry: 15.0 started prefills per active minute" in done.stdout
    missing = run_plan(
        "--from-telemetry", "--telemetry-file", str(tmp_path / "none.jsonl"), cwd=tmp_path
    )
    assert missing.returncode == 1 and "no telemetry at" in missing.stderr
    bad = run_plan("--gpu", "B200", cwd=tmp_path)
    assert bad.returncode == 1 and "unknown GPU 'B200'" in bad.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[team\n", encoding="utf-8")
    done = run_plan("--config", str(broken), cwd=tmp_path)
    assert done.returncode == 1 and "is not valid TOML" in done.stderr
    impossible = run_plan(
        "--ghost-ttft-ms", "5", "--gpu", "L4", "--model", "qwen2.5-coder-7b", cwd=tmp_path
    )
    assert impossible.returncode == 1 and "no candidate meets every SLO" in impossible.stderr
    no_endpoint = run_plan("measure", cwd=tmp_path)
    assert no_endpoint.returncode == 1 and "needs --endpoint" in no_endpoint.stderr
    dead = run_plan("measure", "--endpoint", "http://127.0.0.1:9/v1", cwd=tmp_path)
    assert dead.returncode == 1 and "cannot list models" in dead.stderr


def test_measure_against_the_sim_writes_a_row_that_plans_then_use(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim"))
    from test_sim_http import KEY, Sim

    server = Sim(tmp_path, "--gpu", "H100", "--served-model-name", "qwen2.5-coder-7b")
    rows = tmp_path / "rows.jsonl"
    try:
        env_key = {"SIM_KEY": KEY}
        done = subprocess.run(
            [
                OUZEL,
                "plan",
                "measure",
                "--endpoint",
                server.base_url,
                "--api-key-env",
                "SIM_KEY",
                "--gpu",
                "L40S",
                "--tp",
                "1",
                "--rates",
                "2",
                "--seconds-per-rate",
                "1",
                "--prompt-tokens",
                "128",
                "--output-tokens",
                "8",
                "--benchmarks",
                str(rows),
            ],
            capture_output=True,
            text=True,
            timeout=240,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env_key},
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    assert "→ batches" in done.stderr  # the sim batches like vLLM; llama.cpp's server does not
    record = json.loads(rows.read_text(encoding="utf-8").splitlines()[-1])
    assert (
        record["provenance"] == "measured"
        and record["model"] == "qwen2.5-coder-7b"
        and record["gpu"] == "L40S"
    )
    assert record["date"] and record["machine"] and record["max_num_seqs"] == 256
    assert len(record["ladder"]) == 2 and all(p["requests"] >= 6 for p in record["ladder"])
    planned = run_plan(
        "--benchmarks",
        str(rows),
        "--model",
        "qwen2.5-coder-7b",
        "--gpu",
        "L40S",
        "--tp",
        "1",
        "--no-plot",
        "--out",
        str(tmp_path / "o"),
        cwd=tmp_path,
    )
    assert planned.returncode == 0, planned.stderr
    assert "benchmark row: measured; ouzel plan measure on" in planned.stdout
