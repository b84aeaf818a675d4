"""A scripted OpenAI-compatible HTTP server on 127.0.0.1, for the protocol paths a real
small model cannot produce: tool calls, slow and stalled answers, garbage, truncated streams.

It speaks raw HTTP/1.1 (stdlib asyncio) so a test controls every byte, runs on its own
thread (tests that start `ouzel` subprocesses block the main thread), and records what it
saw: requests with headers and JSON bodies, and when a client hung up mid-stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    """What to answer one request with."""

    status: int = 200
    json: Any = None  # a plain JSON body
    events: list[str] | None = None  # SSE `data:` payloads, sent in order (then [DONE])
    done: bool = True  # send `data: [DONE]` after the events
    delay_s: float = 0.0  # before each event
    head_delay_s: float = 0.0  # before the status line
    truncate: bool = False  # drop the connection after the events, mid chunked body
    raw: bytes | None = None  # the whole response, as is
    content_type: str | None = None
    hang: bool = False  # never answer


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class StreamEnd:
    path: str
    events_sent: int
    client_closed: bool  # the client hung up before the stream ended
    at: float


Script = Callable[[Seen], Reply]


def chat_chunk(delta: dict[str, Any], finish: str | None = None, model: str = "scripted") -> str:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def text_chunk(text: str, finish: str | None = None) -> str:
    return json.dumps(
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 0,
            "model": "scripted",
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
        }
    )


def chat_text_events(pieces: list[str], finish: str = "stop") -> list[str]:
    events = [chat_chunk({"role": "assistant", "content": ""})]
    events += [chat_chunk({"content": piece}) for piece in pieces]
    events.append(chat_chunk({}, finish))
    return events


def tool_call_events(name: str, arguments: str, call_id: str = "call_42") -> list[str]:
    """One tool call streamed the way vLLM does: id and name first, then argument pieces."""
    events = [chat_chunk({"role": "assistant", "content": None})]
    events.append(
        chat_chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }
                ]
            }
        )
    )
    for start in range(0, len(arguments), 7):
        piece = arguments[start : start + 7]
        events.append(chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    events.append(chat_chunk({}, "tool_calls"))
    return events


def tool_calls_events(calls: list[tuple[str, str, str]]) -> list[str]:
    """Several tool calls (id, name, arguments JSON) in one assistant message."""
    events = [chat_chunk({"role": "assistant", "content": None})]
    for index, (call_id, name, arguments) in enumerate(calls):
        head = {"index": index, "id": call_id, "type": "function"}
        events.append(
            chat_chunk({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]})
        )
        for start in range(0, len(arguments), 50):
            piece = arguments[start : start + 50]
            events.append(
                chat_chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            )
    events.append(chat_chunk({}, "tool_calls"))
    return events


def models_reply(*ids: str) -> Reply:
    return Reply(json={"object": "list", "data": [{"id": i, "object": "model"} for i in ids]})


class ScriptedServer:
    """`with ScriptedServer(script) as server:` serves on `server.base_url` until the end."""

    def __init__(
        self,
        script: Script | None = None,
        api_key: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.script: Script = script or (lambda seen: Reply(status=404, json={"error": "no"}))
        self.api_key = api_key
        self.tls = tls
        self.seen: list[Seen] = []
        self.stream_ends: list[StreamEnd] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stream_ended = threading.Condition()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread = threading.Thread(target=self._run, name="scripted-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("scripted server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._shutdown)
        if self._thread is not None:
            self._thread.join(10)

    def wait_stream_end(self, timeout: float) -> StreamEnd | None:
        """The next stream end (waits up to `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        with self._stream_ended:
            while not self.stream_ends:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._stream_ended.wait(left)
            return self.stream_ends.pop(0)

    # --- the server thread -----------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._start())
            self._ready.set()
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        assert self._loop is not None
        self._loop.call_later(0.05, self._loop.stop)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                seen = await self._read_request(reader)
                if seen is None:
                    return
                self.seen.append(seen)
                if self.api_key is not None and seen.headers.get("authorization") != (
                    f"Bearer {self.api_key}"
                ):
                    reply = Reply(status=401, json={"error": {"message": "Invalid API key"}})
                else:
                    reply = self.script(seen)
                keep_open = await self._answer(seen, reply, reader, writer)
                if not keep_open:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> Seen | None:
        line = await reader.readline()
        if not line:
            return None
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            header = await reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body: Any = None
        length = int(headers.get("content-length", "0") or 0)
        if length:
            data = await reader.readexactly(length)
            try:
                body = json.loads(data)
            except ValueError:
                body = data
        return Seen(method, path.split("?")[0], headers, body, time.monotonic())

    async def _answer(
        self,
        seen: Seen,
        reply: Reply,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if reply.hang:
            await reader.read()  # until the client gives up
            self._record_end(seen.path, 0, client_closed=True)
            return False
        if reply.head_delay_s:
            await asyncio.sleep(reply.head_delay_s)
        if reply.raw is not None:
            writer.write(reply.raw)
            await writer.drain()
            return False
        if reply.events is None:
            payload = json.dumps(reply.json).encode() if reply.json is not None else b""
            content_type = reply.content_type or "application/json"
            writer.write(
                _head(reply.status, content_type, {"content-length": str(len(payload))}) + payload
            )
            await writer.drain()
            return True
        return await self._stream(seen, reply, reader, writer)

    async def _stream(
        self,
        seen: Seen,
        reply: Reply,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        content_type = reply.content_type or "text/event-stream"
        # `connection: close`: the hang-up watcher below may eat the first byte of a next
        # request on a reused connection, so streams never share theirs.
        writer.write(
            _head(
                reply.status,
                content_type,
                {"transfer-encoding": "chunked", "connection": "close"},
            )
        )
        await writer.drain()
        # A client that hangs up shows as end of file on the reading side.
        hung_up = asyncio.ensure_future(reader.read(1))
        sent = 0
        events = list(reply.events or [])
        if reply.done and not reply.truncate:
            events.append("[DONE]")
        try:
            for event in events:
                if reply.delay_s:
                    await asyncio.wait({hung_up}, timeout=reply.delay_s)
                if hung_up.done():
                    self._record_end(seen.path, sent, client_closed=True)
                    return False
                writer.write(_chunk(f"data: {event}\n\n".encode()))
                await writer.drain()
                sent += 1
            if reply.truncate:
                self._record_end(seen.path, sent, client_closed=False)
                return False
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            self._record_end(seen.path, sent, client_closed=False)
            return False
        except ConnectionError:
            self._record_end(seen.path, sent, client_closed=True)
            return False
        finally:
            if not hung_up.done():
                hung_up.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await hung_up

    def _record_end(self, path: str, sent: int, client_closed: bool) -> None:
        with self._stream_ended:
            self.stream_ends.append(StreamEnd(path, sent, client_closed, time.monotonic()))
            self._stream_ended.notify_all()


def _head(status: int, content_type: str, extra: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Scripted", f"content-type: {content_type}"]
    lines += [f"{name}: {value}" for name, value in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"
