"""`ouzel sim` over real sockets with the openai client: completions and chat, streaming,
scripted tool calls, /v1/models, auth, /metrics names and buckets, load-dependent TTFT,
prefix-cache hits, client disconnects, faults, and bad input."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from real_servers import free_port

KEY = "sim-test-key"


class Sim:
    def __init__(self, tmp: Path, *extra: str) -> None:
        self.port = free_port()
        self.log = tmp / f"sim-{self.port}.log"
        env = {**os.environ, "SIM_KEY": KEY}
        command = [
            sys.executable,
            "-m",
            "ouzel.server.cli",
            "sim",
            "--port",
            str(self.port),
            "--api-key-env",
            "SIM_KEY",
            "--served-model-name",
            "sim",
            *extra,
        ]
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(
            self.healthy,
            f"ouzel sim on port {self.port} to answer /health",
            lambda: self.log.read_text(),
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"ouzel sim exited: {self.log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def http(self, path: str, body: bytes | None = None, key: str | None = KEY) -> tuple[int, str]:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def client(self) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=self.base_url, api_key=KEY, max_retries=0, timeout=60)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def wait_for(condition, what: str, detail=lambda: "", timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail()}")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    server = Sim(tmp_path, "--gpu", "L4")
    yield server
    server.stop()


async def ttft(client: AsyncOpenAI, prompt: str, max_tokens: int = 8) -> tuple[float, int]:
    started = time.perf_counter()
    first = None
    count = 0
    stream = await client.completions.create(
        model="sim", prompt=prompt, max_tokens=max_tokens, stream=True
    )
    async for event in stream:
        if event.choices and event.choices[0].text:
            first = first or time.perf_counter() - started
            count += 1
    assert first is not None
    return first, count


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_completions_chat_models_and_usage(sim: Sim) -> None:
    client = sim.client()
    models = await client.models.list()
    assert [m.id for m in models.data] == ["sim"]
    whole = await client.completions.create(model="sim", prompt="def add(a, b):", max_tokens=5)
    assert whole.usage is not None and whole.usage.completion_tokens == 5
    assert whole.choices[0].finish_reason == "length" and whole.choices[0].text
    _, tokens = await ttft(client, "x = 1", max_tokens=7)
    assert tokens == 7
    chat = await client.chat.completions.create(
        model="sim", messages=[{"role": "user", "content": "héllo 世界 😀"}], max_tokens=4
    )
    assert chat.choices[0].message.content
    chunks = [
        c
        async for c in await client.chat.completions.create(
            model="sim",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    await client.close()


async def test_scripted_tool_calls_pass_through(sim: Sim) -> None:
    script = {
        "replies": [
            {
                "text": "Let me look.",
                "tool_calls": [{"name": "read_file", "arguments": {"path": "a.py"}}],
            },
            {"text": "Done."},
        ]
    }
    assert sim.http("/admin/script", json.dumps(script).encode())[0] == 200
    client = sim.client()
    tools = [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
            },
        }
    ]
    stream = await client.chat.completions.create(
        model="sim", messages=[{"role": "user", "content": "read a.py"}], tools=tools, stream=True
    )  # type: ignore[arg-type]
    text, calls, finish = "", [], None
    async for chunk in stream:
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta and delta.content:
            text += delta.content
        if delta and delta.tool_calls:
            calls += delta.tool_calls
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert text == "Let me look." and finish == "tool_calls"
    assert calls[0].function.name == "read_file" and json.loads(
        calls[0].function.arguments or ""
    ) == {"path": "a.py"}
    second = await client.chat.completions.create(
        model="sim", messages=[{"role": "user", "content": "and?"}]
    )
    assert (
        second.choices[0].message.content == "Done." and second.choices[0].finish_reason == "stop"
    )
    await client.close()


async def test_ttft_grows_with_load_and_prefix_hits_make_prefill_cheaper(sim: Sim) -> None:
    client = sim.client()
    long_prompt = " ".join(f"word{i}" for i in range(3000))
    cold, _ = await ttft(client, "A " + long_prompt)
    warm, _ = await ttft(client, "A " + long_prompt + " tail")
    assert warm < 0.7 * cold, (cold, warm)
    _, metrics = sim.http("/metrics")
    assert metric(metrics, "vllm:prefix_cache_hits_total") >= 2900
    # Ten cold prompts at once: the last first token waits for the prefills before it.
    results = await asyncio.gather(*(ttft(client, f"{i} " + long_prompt) for i in range(8)))
    assert max(t for t, _ in results) > 3 * cold, (cold, results)
    await client.close()


async def test_metrics_have_vllm_names_labels_and_buckets(sim: Sim) -> None:
    client = sim.client()
    await ttft(client, "print('hi')", max_tokens=4)
    await client.close()
    status, text = sim.http("/metrics")
    assert status == 200
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:request_success_total",
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:num_preemptions_total",
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:request_queue_time_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "vllm:time_per_output_token_seconds_bucket",
        "vllm:request_prefill_time_seconds_bucket",
        "vllm:request_decode_time_seconds_bucket",
        "vllm:request_prompt_tokens_bucket",
        "vllm:request_generation_tokens_bucket",
        "vllm:iteration_tokens_total_bucket",
    ):
        assert f"\n{name}{{" in text, name
    ttft_buckets = [
        line.split('le="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("vllm:time_to_first_token_seconds_bucket")
    ]
    assert ttft_buckets[:10] == [
        "0.001",
        "0.005",
        "0.01",
        "0.02",
        "0.04",
        "0.06",
        "0.08",
        "0.1",
        "0.25",
        "0.5",
    ]
    assert ttft_buckets[-1] == "+Inf" and "2560.0" in ttft_buckets
    assert (
        'vllm:request_success_total{engine="0",finished_reason="length",model_name="sim"} 1.0'
        in text
    )


async def test_a_client_that_disconnects_aborts_its_request(sim: Sim) -> None:
    client = sim.client()
    stream = await client.completions.create(
        model="sim", prompt="loop", max_tokens=2000, stream=True
    )
    async for _ in stream:
        break
    await stream.close()
    await client.close()

    def idle() -> bool:
        text = sim.http("/metrics")[1]
        return metric(text, "vllm:num_requests_running") == 0 and 'finished_reason="abort"' in text

    await asyncio.to_thread(wait_for, idle, "the aborted request to leave the engine")


async def test_faults_on_demand(sim: Sim) -> None:
    client = sim.client()
    assert sim.http("/admin/faults", b'{"error_rate": 1.0}')[0] == 200
    with pytest.raises(openai.InternalServerError):
        await client.completions.create(model="sim", prompt="x", max_tokens=2)
    assert sim.http("/admin/faults", b'{"error_rate": 0, "disconnect_rate": 1.0}')[0] == 200
    with pytest.raises(openai.APIError):
        async for _ in await client.completions.create(
            model="sim", prompt="x", max_tokens=10, stream=True
        ):
            pass
    assert (
        sim.http("/admin/faults", b'{"disconnect_rate": 0, "stall_rate": 1.0, "stall_s": 1.5}')[0]
        == 200
    )
    started = time.perf_counter()
    await ttft(client, "x", max_tokens=3)
    assert time.perf_counter() - started >= 1.5
    assert sim.http("/admin/faults", b'{"error_rate": 2}')[0] == 400
    assert sim.http("/admin/faults", b"[1]")[0] == 400
    await client.close()


def test_bad_requests_get_clear_errors_and_the_server_keeps_running(sim: Sim) -> None:
    assert sim.http("/v1/models", key=None)[0] == 401
    assert sim.http("/v1/models", key="wrong")[0] == 401
    assert sim.http("/v1/completions", b"{not json")[0] == 400
    assert sim.http("/v1/completions", b'{"prompt": 5}')[0] == 400
    assert sim.http("/v1/completions", b'{"prompt": "x", "max_tokens": -1}')[0] == 400
    assert sim.http("/v1/completions", b'{"prompt": "x", "model": "other"}')[0] == 404
    assert sim.http("/v1/chat/completions", b'{"messages": []}')[0] == 400
    assert sim.http("/v1/chat/completions", b'{"messages": [{"content": "no role"}]}')[0] == 400
    huge = json.dumps({"prompt": "w " * 40000, "max_tokens": 4}).encode()
    status, body = sim.http("/v1/completions", huge)
    assert status == 400 and "maximum context length" in body
    assert sim.http("/admin/script", b'{"replies": [{}]}')[0] == 400
    status, body = sim.http("/v1/completions", b'{"prompt": "still alive", "max_tokens": 2}')
    assert status == 200 and json.loads(body)["usage"]["completion_tokens"] == 2


def test_bad_flags_are_refused(tmp_path: Path) -> None:
    for flags, message in (
        (["--gpu", "B200"], "unknown model or GPU"),
        (["--error-rate", "3"], "error_rate"),
        (["--api-key-env", "NOPE_UNSET"], "not set"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "ouzel.server.cli", "sim", *flags],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if k != "NOPE_UNSET"},
        )
        assert done.returncode == 2 and message in done.stderr, done.stderr
