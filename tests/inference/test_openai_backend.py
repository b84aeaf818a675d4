"""The OpenAI-compatible backend against a scripted server on 127.0.0.1: the protocol paths
(tool calls, auth, TLS), cancellation seen from the server side, and every kind of bad
answer becoming a clear BackendError."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from scripted_openai_server import (
    Reply,
    ScriptedServer,
    Seen,
    chat_chunk,
    chat_text_events,
    models_reply,
    text_chunk,
    tool_call_events,
)

from ouzel.inference.openai_compat import Endpoint, OpenAICompatBackend
from ouzel.inference.types import (
    BackendError,
    BackendUnavailable,
    BackendWarming,
    CancelToken,
    ChatChunk,
    ChatMessage,
    CompletionRequest,
    ToolCall,
    ToolSpec,
)

READ_FILE = ToolSpec(
    "read_file",
    "Read a file of the workspace",
    {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)


def backend_for(server: ScriptedServer, **endpoint: object) -> OpenAICompatBackend:
    options: dict[str, object] = {"base_url": server.base_url, "model": "scripted"}
    options.update(endpoint)
    return OpenAICompatBackend("remote", Endpoint(**options))  # type: ignore[arg-type]


async def chat(
    backend: OpenAICompatBackend,
    messages: list[ChatMessage],
    tools: list[ToolSpec] | None = None,
    cancel: CancelToken | None = None,
) -> list[ChatChunk]:
    return [
        chunk async for chunk in backend.stream_chat(messages, tools or [], cancel or CancelToken())
    ]


def by_prompt(replies: dict[str, Reply]) -> object:
    """A script choosing the reply by the last user message (or the completion prompt)."""

    def script(seen: Seen) -> Reply:
        if seen.path.endswith("/models"):
            return models_reply("scripted", "other")
        body = seen.body or {}
        key = body.get("prompt") or body["messages"][-1]["content"]
        return replies[key]

    return script


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- answers ---------------------------------------------------------------------------


async def test_text_completion_streams_and_stops() -> None:
    reply = Reply(events=[text_chunk("    return"), text_chunk(" a + b"), text_chunk("", "stop")])
    with ScriptedServer(by_prompt({"def add(a, b):\n": reply})) as server:
        request = CompletionRequest("def add(a, b):\n", max_tokens=16, stop=("\n\n",))
        result = await backend_for(server).complete(request, CancelToken())
        body = server.seen[-1].body
    assert result.text == "    return a + b"
    assert result.stop_reason == "stop" and result.backend == "remote"
    assert result.first_token_s is not None and result.generated_tokens == 2
    assert body["stream"] is True and body["stop"] == ["\n\n"] and body["max_tokens"] == 16


async def test_tool_call_round_trip() -> None:
    arguments = json.dumps({"path": "src/main.py"})

    def script(seen: Seen) -> Reply:
        messages = seen.body["messages"]
        if messages[-1]["role"] == "user":
            return Reply(events=tool_call_events("read_file", arguments, call_id="call_7"))
        return Reply(events=chat_text_events(["It prints ", "hello."]))

    with ScriptedServer(script) as server:
        backend = backend_for(server)
        question = [ChatMessage("user", "What does src/main.py print?")]
        first = await chat(backend, question, [READ_FILE])
        call = first[-1].tool_calls[0]
        assert first[-1].done and first[-1].stop_reason == "stop"
        assert call == ToolCall("call_7", "read_file", arguments)
        follow_up = [
            *question,
            ChatMessage("assistant", "", tool_calls=(call,)),
            ChatMessage("tool", "print('hello')", tool_call_id="call_7"),
        ]
        second = await chat(backend, follow_up, [READ_FILE])
        first_body, second_body = server.seen[0].body, server.seen[1].body
    assert "".join(c.text for c in second) == "It prints hello."
    assert first_body["tools"][0]["function"]["name"] == "read_file"
    assert first_body["tool_choice"] == "auto"
    assert second_body["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_7",
                "type": "function",
                "function": {"name": "read_file", "arguments": arguments},
            }
        ],
    }
    assert second_body["messages"][2] == {
        "role": "tool",
        "content": "print('hello')",
        "tool_call_id": "call_7",
    }


async def test_tool_results_as_user_messages_for_templates_that_drop_tool_messages() -> None:
    with ScriptedServer(lambda seen: Reply(events=chat_text_events(["ok"]))) as server:
        backend = backend_for(server, tool_results_as_user=True)
        call = ToolCall("call_7", "read_file", "{}")
        messages = [
            ChatMessage("user", "go"),
            ChatMessage("assistant", "", tool_calls=(call,)),
            ChatMessage("tool", "<tool-result>x</tool-result>", tool_call_id="call_7"),
        ]
        await chat(backend, messages, [READ_FILE])
        sent = server.seen[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_7"
    assert sent[2] == {"role": "user", "content": "<tool-result>x</tool-result>"}


async def test_parallel_tool_calls_and_a_nameless_one() -> None:
    two = [
        chat_chunk(
            {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "x", "arguments": "{}"}}]}
        ),
        chat_chunk(
            {
                "tool_calls": [
                    {"index": 1, "id": "b", "function": {"name": "y", "arguments": '{"n"'}}
                ]
            }
        ),
        chat_chunk({"tool_calls": [{"index": 1, "function": {"arguments": ": 1}"}}]}),
        chat_chunk({}, "tool_calls"),
    ]
    nameless = [
        chat_chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"arguments": "{}"}}]}),
        chat_chunk({}, "tool_calls"),
    ]
    with ScriptedServer(
        by_prompt({"two": Reply(events=two), "bad": Reply(events=nameless)})
    ) as server:
        chunks = await chat(backend_for(server), [ChatMessage("user", "two")], [READ_FILE])
        assert chunks[-1].tool_calls == [ToolCall("a", "x", "{}"), ToolCall("b", "y", '{"n": 1}')]
        with pytest.raises(BackendError, match="tool call without a name"):
            await chat(backend_for(server), [ChatMessage("user", "bad")], [READ_FILE])


async def test_embeddings_in_input_order() -> None:
    def script(seen: Seen) -> Reply:
        count = len(seen.body["input"])
        data = [{"index": i, "embedding": [float(i), 1.0]} for i in reversed(range(count))]
        if seen.body["input"][0] == "short":
            data = data[:1]
        return Reply(json={"object": "list", "data": data})

    with ScriptedServer(script) as server:
        backend = backend_for(server)
        assert await backend.embed(["a", "b", "c"]) == [[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]
        assert await backend.embed([]) == []
        with pytest.raises(BackendError, match="1 embeddings for 2 texts"):
            await backend.embed(["short", "x"])


async def test_model_defaults_to_the_first_one_served() -> None:
    reply = Reply(events=chat_text_events(["ok"]))
    with ScriptedServer(by_prompt({"hi": reply})) as server:
        backend = backend_for(server, model=None)
        await chat(backend, [ChatMessage("user", "hi")])
        assert server.seen[0].path == "/v1/models"
        assert server.seen[1].body["model"] == "scripted"


# --- auth and TLS ----------------------------------------------------------------------


async def test_api_key_from_env_or_file_and_wrong_key_is_clear(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reply = Reply(events=chat_text_events(["ok"]))
    with ScriptedServer(by_prompt({"hi": reply}), api_key="right-key") as server:
        monkeypatch.setenv("OUZEL_TEST_KEY", "wrong-key")
        wrong = backend_for(server, api_key_env="OUZEL_TEST_KEY")
        with pytest.raises(BackendUnavailable) as info:
            await chat(wrong, [ChatMessage("user", "hi")])
        message = str(info.value)
        assert "HTTP 401" in message and "$OUZEL_TEST_KEY" in message
        assert "wrong-key" not in message
        key_file = tmp_path / "key"
        key_file.write_text("right-key\n")
        key_file.chmod(0o600)
        chunks = await chat(
            backend_for(server, api_key_file=str(key_file)), [ChatMessage("user", "hi")]
        )
        assert chunks[0].text == "ok"
        assert server.seen[-1].headers["authorization"] == "Bearer right-key"
        with pytest.raises(BackendUnavailable, match=r"refused the request .* no API key"):
            await chat(backend_for(server), [ChatMessage("user", "hi")])
        assert "authorization" not in server.seen[-1].headers


async def test_users_openai_environment_does_not_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-users-own-openai-key")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-users")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "X-Users-Header: 1")
    with ScriptedServer(lambda seen: models_reply("scripted")) as server:
        await backend_for(server, headers={"X-Team": "core"}).probe()
        headers = server.seen[-1].headers
    assert "authorization" not in headers
    assert "openai-organization" not in headers and "x-users-header" not in headers
    assert headers["x-team"] == "core"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    yield cert, key


async def test_tls_with_a_ca_bundle(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with ScriptedServer(lambda seen: models_reply("scripted"), tls=context) as server:
        assert server.base_url.startswith("https://")
        result = await backend_for(server, ca_bundle=str(cert)).probe()
        assert result.models == ("scripted",)
        with pytest.raises(
            BackendUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"
        ):
            await backend_for(server).probe()
    with pytest.raises(BackendUnavailable, match="cannot load the CA bundle"):
        await backend_for(server, ca_bundle="/nonexistent/ca.pem").probe()


# --- cancellation, seen from the server ------------------------------------------------


async def test_cancel_mid_stream_closes_the_connection() -> None:
    slow = Reply(events=chat_text_events([f"w{i} " for i in range(200)]), delay_s=0.03)
    with ScriptedServer(by_prompt({"long": slow})) as server:
        cancel = CancelToken()
        chunks = []
        async for chunk in backend_for(server).stream_chat(
            [ChatMessage("user", "long")], [], cancel
        ):
            chunks.append(chunk)
            if len(chunks) == 3:
                cancel.cancel()
        end = server.wait_stream_end(timeout=5)
    assert chunks[-1].done and chunks[-1].stop_reason == "cancelled"
    assert end is not None and end.client_closed
    assert end.events_sent < 10  # the server stopped right away, not after 200 events


async def test_cancel_while_the_server_is_silent() -> None:
    stalled = Reply(events=chat_text_events(["late"]), delay_s=30)
    with ScriptedServer(by_prompt({"stall": stalled})) as server:
        cancel = CancelToken()
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, cancel.cancel)
        chunks = await chat(backend_for(server), [ChatMessage("user", "stall")], cancel=cancel)
        end = server.wait_stream_end(timeout=5)
    assert chunks == [ChatChunk(done=True, stop_reason="cancelled", backend="remote")]
    # Closed during the 30 s of silence: the server never got to send its answer.
    assert end is not None and end.client_closed and end.events_sent == 0


async def test_task_cancellation_closes_the_connection() -> None:
    """What `$/cancelRequest` does: the handler's asyncio task is cancelled."""
    slow = Reply(events=[text_chunk("x") for _ in range(100)], delay_s=0.05)
    with ScriptedServer(by_prompt({"p": slow})) as server:
        task = asyncio.ensure_future(
            backend_for(server).complete(CompletionRequest("p"), CancelToken())
        )
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        end = server.wait_stream_end(timeout=5)
    assert end is not None and end.client_closed and end.events_sent < 20


async def test_time_cap_returns_what_there_is() -> None:
    slow = Reply(events=[text_chunk("a") for _ in range(100)], delay_s=0.05)
    with ScriptedServer(by_prompt({"p": slow})) as server:
        result = await backend_for(server).complete(
            CompletionRequest("p", max_time_s=0.4), CancelToken()
        )
        end = server.wait_stream_end(timeout=5)
    assert result.stop_reason == "time"
    assert 1 <= len(result.text) < 20
    assert end is not None and end.client_closed


# --- down, slow, garbage ---------------------------------------------------------------


async def test_server_down_is_clear_and_quick(free_port: int) -> None:
    backend = OpenAICompatBackend(
        "remote", Endpoint(base_url=f"http://127.0.0.1:{free_port}/v1", model="m")
    )
    with pytest.raises(BackendUnavailable, match=rf"cannot reach http://127.0.0.1:{free_port}/v1"):
        await chat(backend, [ChatMessage("user", "hi")])


async def test_a_server_that_hangs_up_is_tried_once_not_retried() -> None:
    # The openai client would retry with backoff (seconds); a dead server must fail fast.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        accepted: list[int] = []

        def hang_up() -> None:
            with contextlib.suppress(OSError):
                while True:
                    connection, _ = listener.accept()
                    accepted.append(1)
                    connection.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        backend = OpenAICompatBackend(
            "remote", Endpoint(base_url=f"http://127.0.0.1:{port}/v1", model="m")
        )
        with pytest.raises(BackendError):
            await chat(backend, [ChatMessage("user", "hi")])
        thread.join(timeout=5)
    assert accepted == [1]


async def test_slow_server_times_out() -> None:
    stalled = Reply(events=chat_text_events(["late"]), delay_s=5)
    silent = Reply(hang=True)
    with ScriptedServer(by_prompt({"stall": stalled, "hang": silent})) as server:
        backend = backend_for(server, read_timeout_s=0.5)
        for prompt in ("stall", "hang"):
            # The error, not the late answer: it gave up before the server's 5 s delay.
            with pytest.raises(BackendError, match=r"sent nothing for 0\.5 s"):
                await chat(backend, [ChatMessage("user", prompt)])


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(events=["this is not json"]), "not JSON"),
        (
            Reply(json="<html>502 Bad Gateway</html>", content_type="text/html"),
            "expected an event stream",
        ),
        (Reply(events=chat_text_events(["a", "b"])[:2], truncate=True), "broke mid-answer"),
        (Reply(events=chat_text_events(["a"])[:2], done=False), "without a finish reason"),
        (Reply(events=[json.dumps({"hello": "world"})] * 3), "without a finish reason"),
        (
            Reply(events=[json.dumps({"error": {"message": "CUDA out of memory"}})]),
            "CUDA out of memory",
        ),
        (Reply(status=500, json={"error": {"message": "engine dead"}}), "HTTP 500: engine dead"),
        (Reply(status=404, json={"error": {"message": "model 'x' not found"}}), "HTTP 404"),
        (Reply(status=429, json={"error": "slow down"}), "busy"),
        (
            Reply(
                raw=b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 5\r\n\r\n\xff\xfe\x00\x01"
            ),
            "broke mid-answer|not JSON|finish reason",
        ),
        (Reply(raw=b"garbage, not HTTP at all\r\n\r\n"), "cannot reach|broke|HTTP"),
    ],
)
async def test_bad_answers_become_clear_errors(reply: Reply, message: str) -> None:
    with (
        ScriptedServer(by_prompt({"q": reply})) as server,
        pytest.raises(BackendError, match=message) as info,
    ):
        await chat(backend_for(server), [ChatMessage("user", "q")])
    assert str(info.value).startswith("remote: ")


async def test_loading_server_is_warming_not_failing() -> None:
    loading = Reply(status=503, json={"error": {"message": "Loading model", "code": 503}})
    with (
        ScriptedServer(by_prompt({"q": loading})) as server,
        pytest.raises(BackendWarming, match="still loading"),
    ):
        await chat(backend_for(server), [ChatMessage("user", "q")])


async def test_probe_checks_the_model_and_the_answer_shape() -> None:
    replies = iter(
        [
            models_reply("qwen", "llama"),
            Reply(json="<html>login</html>", content_type="text/html"),
            Reply(json={"object": "list", "data": "nope"}),
        ]
    )
    with ScriptedServer(lambda seen: next(replies)) as server:
        with pytest.raises(
            BackendUnavailable, match=r"does not serve model 'scripted' \(it serves: qwen, llama\)"
        ):
            await backend_for(server).probe()
        for _ in range(2):
            with pytest.raises(BackendError, match=r"did not answer a model list|not an OpenAI"):
                await backend_for(server).probe()
