"""`ouzel sim`: an OpenAI-compatible server whose latency follows the planner's engine
model (continuous batching, chunked prefill, prefix cache, KV limit) on the real clock.

Routes: `/v1/models`, `/v1/completions`, `/v1/chat/completions` (both streaming or not;
chat replays scripted replies, tool calls included), `/metrics` (vLLM's names and
buckets), `/health`, and `/admin/faults`, `/admin/script` to inject faults and replies.
A client that disconnects aborts its request: its seat and KV are freed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ouzel.inference.planner.perf import PerfRow
from ouzel.inference.sim.engine import LiveEngine, LiveRequest, tokenize


@dataclass
class Faults:
    error_rate: float = 0.0  # share of requests answered 500 before any work
    stall_rate: float = 0.0  # share of streams that pause `stall_s` after the first token
    stall_s: float = 0.0
    disconnect_rate: float = 0.0  # share of streams cut mid-way (no [DONE], connection closed)

    def validated(self) -> Faults:
        for name in ("error_rate", "stall_rate", "disconnect_rate"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number within 0..1")
        if not isinstance(self.stall_s, (int, float)) or not 0 <= self.stall_s <= 600:
            raise ValueError("stall_s must be within 0..600 seconds")
        return self


@dataclass
class ScriptedReply:
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SimSettings:
    row: PerfRow
    model: str = "ouzel-sim"
    api_key: str | None = None
    max_model_len: int = 32768
    faults: Faults = field(default_factory=Faults)
    seed: int = 0


class InvalidRequest(ValueError):
    def __init__(
        self, message: str, status: int = 400, kind: str = "invalid_request_error"
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def error(message: str, status: int, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "code": status}}, status_code=status
    )


class SimServer:
    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.engine = LiveEngine(settings.row, settings.model, settings.max_model_len)
        self.script: deque[ScriptedReply] = deque()
        self.rng = random.Random(settings.seed)
        self.app = Starlette(
            routes=[
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/metrics", self.metrics, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/admin/faults", self.faults, methods=["GET", "POST"]),
                Route("/admin/script", self.script_replies, methods=["POST"]),
            ],
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.engine.start()
        yield
        await self.engine.stop()

    def _authorised(self, request: Request) -> bool:
        key = self.settings.api_key
        if not key:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {key}".encode())

    async def health(self, request: Request) -> Response:
        return Response(status_code=200)

    async def metrics(self, request: Request) -> Response:
        return Response(
            generate_latest(self.engine.metrics.registry), media_type=CONTENT_TYPE_LATEST
        )

    async def models(self, request: Request) -> Response:
        if not self._authorised(request):
            return error("invalid API key", 401, "authentication_error")
        card = {
            "id": self.settings.model,
            "object": "model",
            "created": 0,
            "owned_by": "ouzel-sim",
            "max_model_len": self.settings.max_model_len,
        }
        return JSONResponse({"object": "list", "data": [card]})

    async def faults(self, request: Request) -> Response:
        if not self._authorised(request):
            return error("invalid API key", 401, "authentication_error")
        if request.method == "POST":
            try:
                body = await _json_object(request)
                merged = {**asdict(self.settings.faults), **body}
                self.settings.faults = Faults(**merged).validated()
            except (InvalidRequest, TypeError, ValueError) as exc:
                return error(f"bad faults: {exc}", 400)
        return JSONResponse(asdict(self.settings.faults))

    async def script_replies(self, request: Request) -> Response:
        if not self._authorised(request):
            return error("invalid API key", 401, "authentication_error")
        try:
            body = await _json_object(request)
            replies = body.get("replies")
            if not isinstance(replies, list):
                raise InvalidRequest(
                    'expected {"replies": [{"text": …, "tool_calls": [{"name": …, "arguments": {…}}]}]}'
                )
            parsed = [_reply(r) for r in replies]
        except InvalidRequest as exc:
            return error(str(exc), exc.status)
        self.script.extend(parsed)
        return JSONResponse({"queued": len(self.script)})

    async def completions(self, request: Request) -> Response:
        return await self._serve(request, chat=False)

    async def chat(self, request: Request) -> Response:
        return await self._serve(request, chat=True)

    async def _serve(self, request: Request, chat: bool) -> Response:
        if not self._authorised(request):
            return error("invalid API key", 401, "authentication_error")
        try:
            body = await _json_object(request)
            prompt = _chat_prompt(body) if chat else _completion_prompt(body)
            max_tokens = _max_tokens(body)
            model = body.get("model")
            if model not in (None, self.settings.model):
                raise InvalidRequest(f"The model `{model}` does not exist.", 404, "NotFoundError")
        except InvalidRequest as exc:
            return error(str(exc), exc.status, exc.kind)
        faults = self.settings.faults
        if faults.error_rate and self.rng.random() < faults.error_rate:
            return error("injected fault: internal server error", 500, "InternalServerError")
        pieces = tokenize(prompt)
        if not pieces:
            pieces = [" "]
        reply = self.script.popleft() if chat and self.script else None
        reply_pieces = tokenize(reply.text) if reply and reply.text else []
        output_tokens = max_tokens
        finish = "length"
        if reply is not None:
            output_tokens = max(1, len(reply_pieces) + (1 if reply.tool_calls else 0))
            finish = "tool_calls" if reply.tool_calls else "stop"
        if len(pieces) + output_tokens > min(
            self.settings.max_model_len, self.engine.row.kv_tokens
        ):
            return error(
                f"This model's maximum context length is {self.settings.max_model_len} tokens; the request has {len(pieces)} + {output_tokens}.",
                400,
                "BadRequestError",
            )
        await asyncio.sleep(self.engine.row.request_ms / 1000)
        live = self.engine.submit(pieces, output_tokens, finish)
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        shape = _Shape(chat, self.settings.model, reply, reply_pieces, len(pieces), finish)
        if stream:
            stall = (
                faults.stall_s
                if faults.stall_rate and self.rng.random() < faults.stall_rate
                else 0.0
            )
            cut = faults.disconnect_rate > 0 and self.rng.random() < faults.disconnect_rate
            return StreamingResponse(
                self._events(live, shape, include_usage, stall, cut), media_type="text/event-stream"
            )
        return await self._whole(request, live, shape)

    async def _whole(self, request: Request, live: LiveRequest, shape: _Shape) -> Response:
        async def wait_done() -> None:
            while await live.tokens.get() is not None:
                pass

        async def wait_disconnect() -> None:
            while not await request.is_disconnected():
                await asyncio.sleep(0.05)

        done = asyncio.ensure_future(wait_done())
        gone = asyncio.ensure_future(wait_disconnect())
        try:
            await asyncio.wait({done, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not done.done():
                done.cancel()
                self.engine.abort(live)
        if not done.done() or done.cancelled():
            return Response(status_code=499)
        return JSONResponse(shape.whole(live.sent))

    async def _events(
        self, live: LiveRequest, shape: _Shape, include_usage: bool, stall: float, cut: bool
    ) -> AsyncIterator[str]:
        emitted = 0
        try:
            while True:
                item = await live.tokens.get()
                if item is None:
                    break
                if emitted == 1 and stall:
                    await asyncio.sleep(stall)
                if cut and emitted >= max(1, live.engine.max_tokens // 2):
                    raise ConnectionAbortedError("injected fault: disconnect mid-stream")
                for chunk in shape.piece(emitted):
                    yield f"data: {json.dumps(chunk)}\n\n"
                emitted += 1
            yield f"data: {json.dumps(shape.final(emitted))}\n\n"
            if include_usage:
                yield f"data: {json.dumps(shape.usage_chunk(emitted))}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            # Cancelled (the client left) or cut: the engine forgets the request at once.
            self.engine.abort(live)


@dataclass
class _Shape:
    """OpenAI response bodies for one request."""

    chat: bool
    model: str
    reply: ScriptedReply | None
    reply_pieces: list[str]
    prompt_tokens: int
    finish: str
    id: str = field(default_factory=lambda: f"sim-{uuid.uuid4().hex[:12]}")
    created: int = field(default_factory=lambda: int(time.time()))

    def text_at(self, index: int) -> str:
        if self.reply is not None:
            return self.reply_pieces[index] if index < len(self.reply_pieces) else ""
        return f" {index + 9}"  # keeps counting, like the measure prompt asks

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def piece(self, index: int) -> list[dict[str, Any]]:
        text = self.text_at(index)
        if not self.chat:
            return [
                self._envelope(
                    [{"index": 0, "text": text, "logprobs": None, "finish_reason": None}]
                )
            ]
        if self.reply is not None and self.reply.tool_calls and index >= len(self.reply_pieces):
            calls = [
                {
                    "index": i,
                    "id": f"call_{self.id}_{i}",
                    "type": "function",
                    "function": {
                        "name": c["name"],
                        "arguments": json.dumps(c.get("arguments", {})),
                    },
                }
                for i, c in enumerate(self.reply.tool_calls)
            ]
            return [
                self._envelope(
                    [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "tool_calls": calls},
                            "finish_reason": None,
                        }
                    ]
                )
            ]
        delta: dict[str, Any] = {"content": text}
        if index == 0:
            delta["role"] = "assistant"
        return [self._envelope([{"index": 0, "delta": delta, "finish_reason": None}])]

    def final(self, generated: int) -> dict[str, Any]:
        finish = self.finish
        if self.chat:
            return self._envelope([{"index": 0, "delta": {}, "finish_reason": finish}])
        return self._envelope([{"index": 0, "text": "", "logprobs": None, "finish_reason": finish}])

    def usage(self, generated: int) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": generated,
            "total_tokens": self.prompt_tokens + generated,
        }

    def usage_chunk(self, generated: int) -> dict[str, Any]:
        return {**self._envelope([]), "usage": self.usage(generated)}

    def whole(self, generated: int) -> dict[str, Any]:
        text = "".join(self.text_at(i) for i in range(generated))
        body: dict[str, Any] = {
            "id": self.id,
            "created": self.created,
            "model": self.model,
            "usage": self.usage(generated),
        }
        if not self.chat:
            body |= {
                "object": "text_completion",
                "choices": [
                    {"index": 0, "text": text, "logprobs": None, "finish_reason": self.finish}
                ],
            }
            return body
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if self.reply is None or self.reply.text else None,
        }
        if self.reply is not None and self.reply.tool_calls:
            message["content"] = self.reply.text or None
            message["tool_calls"] = [
                {
                    "id": f"call_{self.id}_{i}",
                    "type": "function",
                    "function": {
                        "name": c["name"],
                        "arguments": json.dumps(c.get("arguments", {})),
                    },
                }
                for i, c in enumerate(self.reply.tool_calls)
            ]
        body |= {
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish}],
        }
        return body


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    return body


def _completion_prompt(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequest("`prompt` must be a string (or a list of one string)")
    suffix = body.get("suffix")
    if suffix is not None:
        if not isinstance(suffix, str):
            raise InvalidRequest("`suffix` must be a string")
        prompt += suffix
    return prompt


def _chat_prompt(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty list")
    parts = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest("every message needs a `role`")
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        parts.append(
            f"<|{message['role']}|>{content or ''}{json.dumps(message.get('tool_calls')) if message.get('tool_calls') else ''}"
        )
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest("`tools` must be a list")
    return json.dumps(tools) + "".join(parts) if tools else "".join(parts)


def _max_tokens(body: dict[str, Any]) -> int:
    value = body.get("max_completion_tokens", body.get("max_tokens", 16))
    if value is None:
        value = 16
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest("`max_tokens` must be a positive integer")
    return value


def _reply(raw: Any) -> ScriptedReply:
    if not isinstance(raw, dict):
        raise InvalidRequest("each reply must be an object")
    text = raw.get("text", "")
    calls = raw.get("tool_calls", [])
    if not isinstance(text, str) or not isinstance(calls, list):
        raise InvalidRequest("`text` is a string and `tool_calls` a list")
    for call in calls:
        if (
            not isinstance(call, dict)
            or not isinstance(call.get("name"), str)
            or not isinstance(call.get("arguments", {}), dict)
        ):
            raise InvalidRequest("each tool call needs a `name` and an `arguments` object")
    if not text and not calls:
        raise InvalidRequest("a reply needs `text` or `tool_calls`")
    return ScriptedReply(text, calls)


def serve(settings: SimSettings, host: str, port: int, announce: bool = True) -> None:
    import sys

    import uvicorn

    server = SimServer(settings)
    config = uvicorn.Config(server.app, host=host, port=port, log_level="warning", lifespan="on")
    if announce:
        print(
            f"ouzel sim: serving {settings.model} ({settings.row.provenance} row {settings.row.model} on {settings.row.gpu} TP{settings.row.tp}) at http://{host}:{port}/v1",
            file=sys.stderr,
            flush=True,
        )
    uvicorn.Server(config).run()
