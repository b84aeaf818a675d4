"""`ouzel gpu serve`: the vLLM command it builds, and what happens when vLLM is missing.

vLLM cannot be installed here (no GPU); the run path is exercised with a stand-in `vllm`
executable that records how it was started.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ouzel.inference.gpu import (
    GpuServeError,
    KeySource,
    VllmOptions,
    build_vllm_command,
    tool_call_parser_for,
)


@pytest.mark.parametrize(
    ("model", "parser"),
    [
        ("Qwen/Qwen2.5-Coder-32B-Instruct", "hermes"),
        ("Qwen/Qwen3-Coder-30B-A3B-Instruct", "qwen3_coder"),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama3_json"),
        ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "llama4_pythonic"),
        ("mistralai/Devstral-Small-2505", "mistral"),
        ("deepseek-ai/DeepSeek-V3.1", "deepseek_v31"),
        ("deepseek-ai/DeepSeek-V3-0324", "deepseek_v3"),
        ("ibm-granite/granite-3.3-8b-instruct", "granite"),
        ("openai/gpt-oss-20b", "openai"),
        ("zai-org/GLM-4.5-Air", "glm45"),
        ("/models/my-own-model", None),
    ],
)
def test_tool_call_parser_by_family(model: str, parser: str | None) -> None:
    assert tool_call_parser_for(model) == parser


def test_command_is_loopback_keyed_and_keeps_the_key_off_the_command_line() -> None:
    launch = build_vllm_command(
        VllmOptions(
            weights="Qwen/Qwen2.5-Coder-7B-Instruct",
            served_model_name="coder",
            port=8123,
            max_model_len=16384,
            tool_call_parser="hermes",
            key=KeySource(env="GPU_KEY"),
            extra=("--gpu-memory-utilization", "0.9"),
        )
    )
    assert launch.argv == [
        "vllm", "serve", "Qwen/Qwen2.5-Coder-7B-Instruct",
        "--host", "127.0.0.1", "--port", "8123",
        "--served-model-name", "coder", "--enable-prefix-caching",
        "--max-model-len", "16384",
        "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
        "--gpu-memory-utilization", "0.9",
    ]  # fmt: skip
    assert launch.shell_line().startswith('VLLM_API_KEY="$GPU_KEY" vllm serve ')
    assert launch.warnings == []


def test_no_key_no_command_and_open_host_warns() -> None:
    with pytest.raises(GpuServeError, match="no API key"):
        build_vllm_command(VllmOptions("m", "m"))
    launch = build_vllm_command(
        VllmOptions("m", "m", host="0.0.0.0", key=KeySource(file="/k"), tool_call_parser=None)
    )
    assert any("0.0.0.0" in w and "SSH tunnel" in w for w in launch.warnings)
    assert any("tool-call parser" in w for w in launch.warnings)
    assert """VLLM_API_KEY="$(cat /k)" vllm serve m""" in launch.shell_line()


def run_ouzel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The console script, as users run it (`python -m ouzel.server.cli` registers feature
    # commands in another copy of the module).
    return subprocess.run(
        [str(Path(sys.executable).with_name("ouzel")), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture
def user_env(isolated_home: Path) -> dict[str, str]:
    config = isolated_home / "config" / "ouzel" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "[models.remote]\n"
        'backend = "openai"\n'
        'base_url = "http://127.0.0.1:8123/v1"\n'
        'model = "coder"\n'
        'weights = "Qwen/Qwen2.5-Coder-7B-Instruct"\n'
        'api_key_env = "OUZEL_GPU_KEY"\n'
        "context_length = 16384\n"
    )
    return {**os.environ, "XDG_CONFIG_HOME": str(isolated_home / "config")}


def test_dry_run_prints_the_command_from_the_profile(user_env: dict[str, str]) -> None:
    out = run_ouzel("gpu", "serve", "--dry-run", env=user_env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        'VLLM_API_KEY="$OUZEL_GPU_KEY" vllm serve Qwen/Qwen2.5-Coder-7B-Instruct '
        "--host 127.0.0.1 --port 8123 --served-model-name coder --enable-prefix-caching "
        "--max-model-len 16384 --enable-auto-tool-choice --tool-call-parser hermes"
    )
    flags = run_ouzel(
        "gpu", "serve", "--dry-run", "--model", "mistralai/Devstral-Small-2505",
        "--served-model-name", "dev", "--port", "9001", "--tool-call-parser", "none",
        "--", "--tensor-parallel-size", "2",
        env=user_env,
    )  # fmt: skip
    assert flags.returncode == 0, flags.stderr
    line = flags.stdout.strip()
    assert "vllm serve mistralai/Devstral-Small-2505 --host 127.0.0.1 --port 9001" in line
    assert "--tool-call-parser" not in line and line.endswith("--tensor-parallel-size 2")
    assert "tool-call parser" in flags.stderr


def test_missing_vllm_is_a_clear_error(user_env: dict[str, str], tmp_path: Path) -> None:
    env = {**user_env, "OUZEL_GPU_KEY": "k", "PATH": str(tmp_path)}
    out = run_ouzel("gpu", "serve", env=env)
    assert out.returncode == 1
    assert "vLLM is not installed" in out.stderr and "ouzel[gpu]" in out.stderr


def test_missing_key_or_model_is_a_clear_error(user_env: dict[str, str]) -> None:
    env = {k: v for k, v in user_env.items() if k != "OUZEL_GPU_KEY"}
    no_model = run_ouzel("gpu", "serve", "--dry-run", "--profile", "other", env=env)
    assert no_model.returncode == 1 and "which model?" in no_model.stderr
    no_key = run_ouzel("gpu", "serve", "--dry-run", "--profile", "other", "--model", "m", env=env)
    assert no_key.returncode == 1 and "no API key" in no_key.stderr


def test_serve_runs_vllm_with_the_key_in_its_environment(
    user_env: dict[str, str], tmp_path: Path
) -> None:
    record = tmp_path / "record.txt"
    stand_in = tmp_path / "vllm"
    stand_in.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {record}\n'
        f'printf "key=%s\\n" "$VLLM_API_KEY" >> {record}\n'
    )
    stand_in.chmod(0o755)
    env = {**user_env, "OUZEL_GPU_KEY": "s3cret-key", "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    out = run_ouzel("gpu", "serve", env=env)
    assert out.returncode == 0, out.stderr
    lines = record.read_text().splitlines()
    assert lines[:3] == ["serve", "Qwen/Qwen2.5-Coder-7B-Instruct", "--host"]
    assert lines[-1] == "key=s3cret-key"
    assert not any("s3cret-key" in line for line in lines[:-1])
    assert "s3cret-key" not in out.stderr + out.stdout


def test_data_and_tensor_parallel_sizes(user_env: dict[str, str]) -> None:
    out = run_ouzel(
        "gpu", "serve", "--dry-run", "--data-parallel-size", "4", "--tensor-parallel-size", "2",
        env=user_env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "--enable-prefix-caching" in out.stdout
    assert "--data-parallel-size 4 --tensor-parallel-size 2" in out.stdout
    default = run_ouzel("gpu", "serve", "--dry-run", env=user_env)
    assert "parallel-size" not in default.stdout
    bad = run_ouzel("gpu", "serve", "--dry-run", "--data-parallel-size", "0", env=user_env)
    assert bad.returncode != 0 and "--data-parallel-size must be at least 1" in bad.stderr
