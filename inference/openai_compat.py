"""An OpenAI-compatible HTTP backend (vLLM, llama.cpp's server, Ollama, LM Studio, OpenAI)
through the `openai` package's async client.

- Streams everything (text completion and chat), so a cancel can close the HTTP stream:
  vLLM and llama.cpp's server abort a request whose connection closes.
- The API key comes from an environment variable or a file, never from settings; nothing
  from the user's own `OPENAI_*` environment leaks into requests to other servers.
- No retries inside the client: the router decides what to do on a failure, at once.
- Every failure becomes a `BackendError` whose message says what happened and where
  (server down, bad key, timeout, garbage, a stream cut short); the raw openai/httpx
  exceptions never escape.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import ssl
import stat
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import openai
from openai import AsyncOpenAI, AsyncStream, Omit

from ouzel.inference.health import ProbeResult
from ouzel.inference.types import (
    BackendError,
    BackendUnavailable,
    BackendWarming,
    CancelToken,
    ChatChunk,
    ChatMessage,
    CompletionRequest,
    CompletionResult,
    StopReason,
    ToolCall,
    ToolSpec,
)

log = logging.getLogger("ouzel.inference.openai")

T = TypeVar("T")

PROBE_READ_TIMEOUT_S = 5.0
# Headers the openai package fills from the user's environment (OPENAI_ORG_ID, …). They
# belong to the user's OpenAI account, not to a self-hosted server.
_AMBIENT_HEADERS = ("OpenAI-Organization", "OpenAI-Project")
_FUNCTION_HEAD = re.compile(r"functions\.(\w+):")
_FINISH: dict[str, StopReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "stop",
    "function_call": "stop",
    "eos": "stop",
    "content_filter": "error",
}


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one OpenAI-compatible server (plain values, no secrets)."""

    base_url: str
    model: str | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    ca_bundle: str | None = None
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 60.0
    context_length: int = 4096
    # False for servers that cannot stream tool calls (llama-cpp-python's
    # `chatml-function-calling` streams only the first word): requests that offer tools
    # are then sent unstreamed; a cancel still closes the connection. That format also
    # answers a bare `functions.NAME:` when its model picked "message" and then a tool:
    # such an answer is asked again once with that tool forced.
    stream_tool_calls: bool = True
    # True for chat templates that drop `tool` messages (that same format): tool results
    # go as `user` messages; the agent's results are delimited data either way.
    tool_results_as_user: bool = False


def normalize_base_url(url: str) -> str:
    """`http://host:8000` and `http://host:8000/v1/` both mean `http://host:8000/v1`."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise BackendUnavailable(f"base URL {url!r} must start with http:// or https://")
    if not url.endswith("/v1") and "/v1/" not in url + "/":
        url += "/v1"
    return url


def read_api_key(endpoint: Endpoint) -> str | None:
    """The API key from `api_key_env` or `api_key_file`; None when neither is set."""
    if endpoint.api_key_env:
        value = os.environ.get(endpoint.api_key_env, "").strip()
        if not value:
            raise BackendUnavailable(
                f"the API key variable {endpoint.api_key_env} is not set (or empty) in the "
                "environment ouzel runs in"
            )
        return value
    if endpoint.api_key_file:
        path = Path(endpoint.api_key_file).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise BackendUnavailable(f"cannot read the API key file {path}: {exc}") from exc
        if not value:
            raise BackendUnavailable(f"the API key file {path} is empty")
        _warn_if_readable_by_others(path)
        return value
    return None


def _warn_if_readable_by_others(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning("the API key file %s is readable by other users (chmod 600 it)", path)


def estimate_tokens(text: str) -> int:
    """A deliberately high estimate (about 3 characters a token for code) so budgets hold."""
    return max(1, math.ceil(len(text) / 3))


class OpenAICompatBackend:
    """One OpenAI-compatible server and model, behind the `Backend` protocol."""

    def __init__(self, name: str, endpoint: Endpoint) -> None:
        self.name = name
        self.endpoint = endpoint
        self.base_url = normalize_base_url(endpoint.base_url)
        self._model: str | None = endpoint.model
        self._client: AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._keyless = False

    def __repr__(self) -> str:
        return f"OpenAICompatBackend({self.name!r}, {self.base_url!r}, model={self._model!r})"

    # --- the Backend protocol ----------------------------------------------------------

    async def complete(self, request: CompletionRequest, cancel: CancelToken) -> CompletionResult:
        started = time.perf_counter()
        model = await self.model_id()
        deadline = started + request.max_time_s if request.max_time_s else None
        stream = await self._call(
            lambda client: client.completions.create(
                model=model,
                prompt=request.prompt,
                max_tokens=request.max_tokens,
                stop=list(request.stop) or None,
                temperature=request.temperature,
                stream=True,
                extra_headers=self._extra_headers(),
            )
        )
        pieces: list[str] = []
        first_token_s: float | None = None
        finish: str | None = None
        chunks = 0
        reader = _GuardedStream(stream, cancel, deadline, self)
        async with aclosing(reader.events()) as events:
            async for event in events:
                for choice in _choices(event):
                    text = getattr(choice, "text", None)
                    if isinstance(text, str) and text:
                        if first_token_s is None:
                            first_token_s = time.perf_counter() - started
                        pieces.append(text)
                        chunks += 1
                    finish = getattr(choice, "finish_reason", None) or finish
        stop_reason: StopReason
        if reader.stopped is not None:
            stop_reason = reader.stopped
        elif finish is None:
            raise self._truncated("completion", chunks)
        else:
            stop_reason = _FINISH.get(finish, "stop")
        return CompletionResult(
            text="".join(pieces),
            stop_reason=stop_reason,
            backend=self.name,
            generated_tokens=chunks,  # servers stream about one token per event
            first_token_s=first_token_s,
            total_s=time.perf_counter() - started,
        )

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        cancel: CancelToken,
        max_tokens: int = 1024,
        temperature: float = 0.2,
    ) -> AsyncIterator[ChatChunk]:
        model = await self.model_id()
        params: dict[str, Any] = {
            "model": model,
            "messages": [
                _message_json(message, self.endpoint.tool_results_as_user) for message in messages
            ],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
        }
        if tools:
            params["tools"] = [_tool_json(tool) for tool in tools]
            params["tool_choice"] = "auto"
            if not self.endpoint.stream_tool_calls:
                async for chunk in self._chat_unstreamed(params, cancel):
                    yield chunk
                return
        stream = await self._call(
            lambda client: client.chat.completions.create(
                **params, extra_headers=self._extra_headers()
            )
        )
        calls = _ToolCallAssembler(self.name)
        finish: str | None = None
        chunks = 0
        reader = _GuardedStream(stream, cancel, None, self)
        async with aclosing(reader.events()) as events:
            async for event in events:
                for choice in _choices(event):
                    delta = getattr(choice, "delta", None)
                    content = getattr(delta, "content", None)
                    for call in getattr(delta, "tool_calls", None) or ():
                        calls.add(call)
                    finish = getattr(choice, "finish_reason", None) or finish
                    if isinstance(content, str) and content:
                        chunks += 1
                        yield ChatChunk(text=content, backend=self.name)
        if reader.stopped is not None:
            yield ChatChunk(done=True, stop_reason=reader.stopped, backend=self.name)
            return
        if finish is None:
            raise self._truncated("chat answer", chunks)
        yield ChatChunk(
            tool_calls=calls.finished(),
            done=True,
            stop_reason=_FINISH.get(finish, "stop"),
            backend=self.name,
        )

    async def _chat_unstreamed(
        self, params: dict[str, Any], cancel: CancelToken
    ) -> AsyncIterator[ChatChunk]:
        """One whole answer (text and tool calls) as chunks; cancel drops the request."""
        chunks = [chunk async for chunk in self._chat_once(params, cancel)]
        head = _FUNCTION_HEAD.fullmatch("".join(chunk.text for chunk in chunks).strip())
        offered = {tool["function"]["name"] for tool in params.get("tools", [])}
        if head and head.group(1) in offered and not cancel.cancelled:
            forced = {"type": "function", "function": {"name": head.group(1)}}
            chunks = [c async for c in self._chat_once({**params, "tool_choice": forced}, cancel)]
        for chunk in chunks:
            yield chunk

    async def _chat_once(
        self, params: dict[str, Any], cancel: CancelToken
    ) -> AsyncIterator[ChatChunk]:
        request = asyncio.ensure_future(
            self._call(
                lambda client: client.chat.completions.create(
                    **{**params, "stream": False}, extra_headers=self._extra_headers()
                )
            )
        )
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()

        def stop() -> None:
            if not stopped.done():
                stopped.set_result(None)

        unsubscribe = cancel.on_cancel(lambda: loop.call_soon_threadsafe(stop))
        try:
            waiting: set[asyncio.Future[Any]] = {request, stopped}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if not request.done():
                request.cancel()  # closes the HTTP connection: the server stops generating
                with contextlib.suppress(asyncio.CancelledError, BackendError):
                    await request
                yield ChatChunk(done=True, stop_reason="cancelled", backend=self.name)
                return
            response = request.result()
        finally:
            unsubscribe()
            if not request.done():
                request.cancel()
        choices = _choices(response)
        if not choices:
            raise self._not_openai(ValueError("the answer has no choices"))
        message = getattr(choices[0], "message", None)
        text = getattr(message, "content", None)
        if isinstance(text, str) and text:
            yield ChatChunk(text=text, backend=self.name)
        calls = [
            ToolCall(
                id=getattr(call, "id", None) or f"call_{index}",
                name=str(getattr(getattr(call, "function", None), "name", "") or ""),
                arguments=str(getattr(getattr(call, "function", None), "arguments", "") or "{}"),
            )
            for index, call in enumerate(getattr(message, "tool_calls", None) or ())
        ]
        if any(not call.name for call in calls):
            raise BackendError(f"{self.name}: the server sent a tool call without a name")
        finish = getattr(choices[0], "finish_reason", None) or "stop"
        yield ChatChunk(
            tool_calls=calls, done=True, stop_reason=_FINISH.get(finish, "stop"), backend=self.name
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = await self.model_id()
        response = await self._call(
            lambda client: client.embeddings.create(
                model=model, input=list(texts), extra_headers=self._extra_headers()
            )
        )
        data = getattr(response, "data", None)
        if not isinstance(data, list) or len(data) != len(texts):
            raise BackendError(
                f"{self.name}: the server answered {len(data) if isinstance(data, list) else 0} "
                f"embeddings for {len(texts)} texts"
            )
        ordered = sorted(data, key=lambda item: getattr(item, "index", 0))
        vectors: list[list[float]] = []
        for item in ordered:
            vector = getattr(item, "embedding", None)
            if not isinstance(vector, list) or not all(isinstance(x, int | float) for x in vector):
                raise BackendError(f"{self.name}: the server sent an embedding that is not numbers")
            vectors.append([float(x) for x in vector])
        return vectors

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    # --- health ------------------------------------------------------------------------

    async def probe(self) -> ProbeResult:
        """`GET /v1/models` with a short timeout; checks the configured model is served."""
        self._client_for_loop()  # building the client is not the server's latency
        started = time.perf_counter()
        timeout = httpx2.Timeout(
            connect=self.endpoint.connect_timeout_s,
            read=min(PROBE_READ_TIMEOUT_S, self.endpoint.read_timeout_s),
            write=self.endpoint.connect_timeout_s,
            pool=self.endpoint.connect_timeout_s,
        )
        page = await self._call(
            lambda client: client.models.list(timeout=timeout, extra_headers=self._extra_headers())
        )
        ids = _model_ids(page)
        if ids is None:
            raise BackendError(
                f"{self.name}: {self.base_url}/models did not answer a model list "
                "(is this an OpenAI-compatible server?)"
            )
        if self.endpoint.model and self.endpoint.model not in ids:
            served = ", ".join(ids) or "nothing"
            raise BackendUnavailable(
                f"{self.name}: the server does not serve model '{self.endpoint.model}' "
                f"(it serves: {served})"
            )
        if self._model is None and ids:
            self._model = ids[0]
        return ProbeResult(models=tuple(ids), latency_s=time.perf_counter() - started)

    async def model_id(self) -> str:
        """The configured model, or the first one the server lists."""
        if self._model is None:
            result = await self.probe()
            if not result.models:
                raise BackendUnavailable(f"{self.name}: the server lists no models")
        assert self._model is not None
        return self._model

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # --- plumbing ----------------------------------------------------------------------

    def _client_for_loop(self) -> AsyncOpenAI:
        # An httpx connection pool belongs to the event loop that opened it.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = self._new_client()
            self._client_loop = loop
        return self._client

    def _new_client(self) -> AsyncOpenAI:
        endpoint = self.endpoint
        api_key = read_api_key(endpoint)
        headers: dict[str, Any] = {name: Omit() for name in _AMBIENT_HEADERS}
        for line in os.environ.get("OPENAI_CUSTOM_HEADERS", "").splitlines():
            name = line.partition(":")[0].strip()
            if name:
                headers[name] = Omit()
        headers.update(endpoint.headers)
        verify: ssl.SSLContext | bool = True
        if endpoint.ca_bundle:
            bundle = Path(endpoint.ca_bundle).expanduser()
            try:
                verify = ssl.create_default_context(cafile=str(bundle))
            except (OSError, ssl.SSLError) as exc:
                raise BackendUnavailable(f"cannot load the CA bundle {bundle}: {exc}") from exc
        timeout = httpx2.Timeout(
            connect=endpoint.connect_timeout_s,
            read=endpoint.read_timeout_s,
            write=endpoint.read_timeout_s,
            pool=endpoint.connect_timeout_s,
        )
        http_client = openai.DefaultAsyncHttpx2Client(verify=verify, timeout=timeout)
        # Without a key, each request omits `Authorization` (`_extra_headers`), so a
        # keyless server gets no `Bearer <placeholder>`.
        self._keyless = api_key is None
        return AsyncOpenAI(
            api_key=api_key or "unused",
            admin_api_key="",
            base_url=self.base_url,
            organization=None,
            project=None,
            timeout=timeout,
            max_retries=0,
            default_headers=headers,
            http_client=http_client,
        )

    async def _call(self, make: Callable[[AsyncOpenAI], Awaitable[T]]) -> T:
        """Run one client call, turning every failure into a clear BackendError."""
        client = self._client_for_loop()
        try:
            return await make(client)
        except openai.OpenAIError as exc:
            raise self.translate(exc) from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BackendError(f"{self.name}: the server answered with garbage: {exc}") from exc
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            # The openai package trips over answers that are not OpenAI-shaped.
            raise self._not_openai(exc) from exc

    def _extra_headers(self) -> dict[str, Any]:
        """Per-request headers (the openai package checks `Authorization` per request)."""
        return {"Authorization": Omit()} if self._keyless else {}

    def translate(self, exc: BaseException, mid_stream: bool = False) -> BackendError:
        """A user-facing BackendError for an openai/httpx failure."""
        where = self.base_url
        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, openai.APITimeoutError):
            cause = exc.__cause__
            if isinstance(cause, httpx2.ConnectTimeout):
                return BackendUnavailable(
                    f"{self.name}: cannot connect to {where} within "
                    f"{self.endpoint.connect_timeout_s:g} s"
                )
            return BackendError(
                f"{self.name}: {where} sent nothing for {self.endpoint.read_timeout_s:g} s "
                "(read timeout)"
            )
        if isinstance(exc, openai.APIConnectionError):
            reason = _root_reason(exc)
            if mid_stream:
                return BackendError(
                    f"{self.name}: the connection to {where} broke mid-answer ({reason})"
                )
            return BackendUnavailable(f"{self.name}: cannot reach {where} ({reason})")
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc)
        if isinstance(exc, openai.APIError):  # an `error` event inside a stream
            return BackendError(f"{self.name}: the server reported an error: {exc.message}")
        return BackendError(f"{self.name}: {type(exc).__name__}: {exc}")

    def _status_error(self, exc: openai.APIStatusError) -> BackendError:
        status = exc.status_code
        detail = _error_detail(exc)
        if status in (401, 403):
            source = (
                f"the key in ${self.endpoint.api_key_env}"
                if self.endpoint.api_key_env
                else f"the key in {self.endpoint.api_key_file}"
                if self.endpoint.api_key_file
                else "no API key (set `api_key_env` or `api_key_file`)"
            )
            return BackendUnavailable(
                f"{self.name}: {self.base_url} refused the request (HTTP {status}: {detail}); "
                f"ouzel sent {source}"
            )
        if status == 503 and "load" in detail.lower():
            return BackendWarming(f"{self.name}: the server is still loading its model ({detail})")
        if status == 404:
            return BackendError(
                f"{self.name}: {self.base_url} has no such model or route "
                f"(HTTP 404: {detail}; model '{self._model}')"
            )
        if status == 429:
            return BackendError(f"{self.name}: the server is busy (HTTP 429: {detail})")
        return BackendError(f"{self.name}: the server answered HTTP {status}: {detail}")

    def _not_openai(self, exc: BaseException) -> BackendError:
        return BackendError(
            f"{self.name}: {self.base_url} answered something that is not an OpenAI-compatible "
            f"response ({type(exc).__name__}: {str(exc)[:200]})"
        )

    def _truncated(self, what: str, chunks: int) -> BackendError:
        return BackendError(
            f"{self.name}: the {what} from {self.base_url} ended after {chunks} pieces without "
            "a finish reason (the stream was cut short, or this is not an OpenAI-compatible "
            "server)"
        )


class _GuardedStream:
    """Iterates an SSE stream until it ends, the token is cancelled or the deadline passes;
    always closes the HTTP response, which is what tells the server to stop generating."""

    def __init__(
        self,
        stream: AsyncStream[Any],
        cancel: CancelToken,
        deadline: float | None,  # time.perf_counter() value
        backend: OpenAICompatBackend,
    ) -> None:
        self.stream = stream
        self.cancel = cancel
        self.deadline = deadline
        self.backend = backend
        self.stopped: StopReason | None = None

    async def events(self) -> AsyncGenerator[Any, None]:
        loop = asyncio.get_running_loop()
        stop: asyncio.Future[StopReason] = loop.create_future()

        def stop_with(reason: StopReason) -> None:
            if not stop.done():
                stop.set_result(reason)

        unsubscribe = self.cancel.on_cancel(
            lambda: loop.call_soon_threadsafe(stop_with, "cancelled")
        )
        timer = None
        if self.deadline is not None:
            delay = max(0.0, self.deadline - time.perf_counter())
            timer = loop.call_later(delay, stop_with, "time")
        iterator = self.stream.__aiter__()
        step: asyncio.Future[Any] | None = None
        try:
            self._check_content_type()
            while True:
                step = asyncio.ensure_future(iterator.__anext__())
                await asyncio.wait({step, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    self.stopped = stop.result()
                    return
                try:
                    event = step.result()
                except StopAsyncIteration:
                    return
                except openai.OpenAIError as exc:
                    raise self.backend.translate(exc, mid_stream=True) from exc
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise BackendError(
                        f"{self.backend.name}: the server sent an event that is not JSON ({exc})"
                    ) from exc
                except (AttributeError, TypeError, ValueError, KeyError) as exc:
                    raise self.backend._not_openai(exc) from exc
                step = None
                yield event
        finally:
            unsubscribe()
            if timer is not None:
                timer.cancel()
            if step is not None and not step.done():
                # Let the pending read unwind before the response closes under it; `wait`
                # swallows the read's own CancelledError but not one aimed at us.
                step.cancel()
                await asyncio.wait({step})
            with contextlib.suppress(Exception):
                await self.stream.close()

    def _check_content_type(self) -> None:
        content_type = self.stream.response.headers.get("content-type", "")
        if "event-stream" not in content_type:
            raise BackendError(
                f"{self.backend.name}: expected an event stream from {self.backend.base_url} "
                f"but got {content_type or 'no content type'} (is this an OpenAI-compatible "
                "server?)"
            )


class _ToolCallAssembler:
    """Joins streamed tool-call fragments (keyed by index) into whole calls."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.parts: dict[int, dict[str, Any]] = {}

    def add(self, fragment: Any) -> None:
        index = getattr(fragment, "index", None)
        if not isinstance(index, int):
            index = len(self.parts)
        part = self.parts.setdefault(index, {"id": None, "name": "", "arguments": ""})
        if getattr(fragment, "id", None):
            part["id"] = fragment.id
        function = getattr(fragment, "function", None)
        name = getattr(function, "name", None)
        if isinstance(name, str) and name:
            part["name"] += name if not part["name"].endswith(name) else ""
        arguments = getattr(function, "arguments", None)
        if isinstance(arguments, str):
            part["arguments"] += arguments

    def finished(self) -> list[ToolCall]:
        calls = []
        for index in sorted(self.parts):
            part = self.parts[index]
            if not part["name"]:
                raise BackendError(
                    f"{self.backend}: the server streamed a tool call without a name"
                )
            calls.append(
                ToolCall(
                    id=part["id"] or f"call_{index}",
                    name=part["name"],
                    arguments=part["arguments"] or "{}",
                )
            )
        return calls


def _choices(event: Any) -> list[Any]:
    choices = getattr(event, "choices", None)
    return choices if isinstance(choices, list) else []


def _model_ids(page: Any) -> list[str] | None:
    data = getattr(page, "data", None)
    if not isinstance(data, list):
        return None
    ids = [getattr(item, "id", None) for item in data]
    return [i for i in ids if isinstance(i, str)]


def _message_json(message: ChatMessage, tool_results_as_user: bool = False) -> dict[str, Any]:
    if message.role == "tool" and tool_results_as_user:
        return {"role": "user", "content": message.content}
    body: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "tool":
        body["tool_call_id"] = message.tool_call_id or ""
    if message.tool_calls:
        # A string, never null: llama-cpp-python's server answers HTTP 500 to `null`, and
        # OpenAI and vLLM take "" as well.
        body["content"] = message.content or ""
        body["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    return body


def _tool_json(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def _error_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body))
        if isinstance(error, dict):
            error = error.get("message", error)
        return str(error)[:300]
    if isinstance(body, str) and body.strip():
        return body.strip()[:300]
    return exc.message[:300]


def _root_reason(exc: BaseException) -> str:
    """The innermost cause's message ("[Errno 111] Connection refused", …)."""
    reason = str(exc)
    cause = exc.__cause__ or exc.__context__
    seen = 0
    while cause is not None and seen < 8:
        text = str(cause)
        if text:
            reason = text
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return reason
