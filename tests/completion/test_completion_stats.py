"""`ouzel stats` over a telemetry file, including lines that are not valid events."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from ouzel.server.features.telemetry import Telemetry, percentile, read_events, summarize

OUZEL = [sys.executable, "-c", "from ouzel.server.cli import main; raise SystemExit(main())"]


def write_session(path: Path) -> None:
    telemetry = Telemetry(path)
    for suggestion, latency in (("s1", 300.0), ("s2", 500.0), ("s3", 700.0)):
        telemetry.record("model", kind="cold", promptTokens=400, reusedTokens=0)
        telemetry.record("served", id=suggestion, kind="cold", latencyMs=latency)
    for suggestion, latency in (("s4", 80.0), ("s5", 120.0)):
        telemetry.record("model", kind="reused", promptTokens=400, reusedTokens=396)
        telemetry.record("served", id=suggestion, kind="reused", latencyMs=latency)
    for latency in (0.4, 0.6, 0.9, 1.1, 3.0):  # typing through s4
        telemetry.record("served", id="s4", kind="cache", latencyMs=latency)
    for suggestion in ("s1", "s2", "s3", "s4"):
        telemetry.record("shown", id=suggestion)
    telemetry.record("partial", id="s1", acceptedChars=4)
    telemetry.record("accepted", id="s1")  # in part, then whole: counted once
    telemetry.record("partial", id="s3", acceptedChars=2)
    with path.open("a") as handle:
        handle.write('not json\n[1, 2]\n{"no_event": 1}\n')


def test_summary_numbers(tmp_path: Path) -> None:
    path = tmp_path / "completions.jsonl"
    write_session(path)
    summary = summarize(read_events(path))
    assert summary.served == 10 and summary.model_calls == 5
    assert len(summary.shown_ids) == 4 and len(summary.served_ids) == 5
    assert summary.acceptance_rate == 0.25
    assert summary.any_acceptance_rate == 0.5
    assert summary.cache_hit_rate == 0.5
    assert summary.reused_share == 792 / 2000
    assert percentile(summary.latencies_ms["cold"], 0.5) == 500.0
    assert percentile(summary.latencies_ms["cache"], 0.95) == 3.0
    assert percentile([], 0.5) is None


def test_stats_command_json_and_table(tmp_path: Path) -> None:
    path = tmp_path / "completions.jsonl"
    write_session(path)
    command = [*OUZEL, "stats", "--file", str(path)]
    data = json.loads(
        subprocess.run([*command, "--json"], capture_output=True, text=True, check=True).stdout
    )
    assert data["served"] == 10 and data["acceptanceRate"] == 0.25
    assert data["acceptedWholeOrInPart"] == 0.5
    assert data["latency"]["reused"] == {"count": 2, "p50Ms": 80.0, "p95Ms": 120.0}
    table = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "acceptance rate" in table and "25%" in table and "type-through cache" in table


def test_stats_without_telemetry(tmp_path: Path) -> None:
    out = subprocess.run(
        [*OUZEL, "stats", "--file", str(tmp_path / "none.jsonl")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "No completions recorded yet" in out


def test_an_unwritable_telemetry_file_is_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    telemetry = Telemetry(blocker / "completions.jsonl")  # its parent is a file
    with caplog.at_level(logging.WARNING):
        telemetry.record("served", id="x")
        telemetry.record("served", id="y")  # logged once, then quiet
        telemetry.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "telemetry is off" in warnings[0] and str(blocker) in warnings[0]
    assert blocker.read_text() == ""  # nothing was written anywhere
