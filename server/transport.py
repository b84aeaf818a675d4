"""Reading framed LSP messages from stdio or TCP and handing the bodies to a protocol.

Framing faults (a header without Content-Length, a body cut short, an absurd length) are
logged and skipped; the connection keeps going whenever the stream can be resynchronised.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

log = logging.getLogger("ouzel.server.transport")

MAX_BODY_BYTES = 256 * 1024 * 1024


class FramingError(Exception):
    pass


class MessageTooLarge(FramingError):
    pass


class ConnectionLimitExceeded(Exception):
    """The client broke a per-connection limit; the connection is closed with this reason."""


@dataclass(frozen=True)
class ReadLimits:
    """Deadlines and sizes for reading one TCP client's messages (see server/team.py)."""

    max_message_bytes: int = 32 * 1024 * 1024
    idle_timeout_s: float = 3600.0  # no new message for this long: the client is gone
    header_timeout_s: float = 10.0  # from a header's first byte to its blank line
    body_timeout_s: float = 120.0  # from the blank line to the body's last byte
    max_header_lines: int = 16


def parse_content_length(header_lines: list[bytes], max_bytes: int = MAX_BODY_BYTES) -> int:
    for line in header_lines:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                length = int(value.strip())
            except ValueError as exc:
                raise FramingError(f"bad Content-Length {value.strip()!r}") from exc
            if length < 0:
                raise FramingError(f"Content-Length {length} out of range")
            if length > max_bytes:
                raise MessageTooLarge(
                    f"a message of {length} bytes exceeds the limit of {max_bytes}"
                )
            return length
    raise FramingError("header without Content-Length")


def read_message_blocking(stream: BinaryIO) -> bytes | None:
    """One message body from a blocking stream; None at end of stream."""
    while True:
        headers: list[bytes] = []
        while True:
            line = stream.readline()
            if not line:
                return None
            if line in (b"\r\n", b"\n"):
                if headers:
                    break
                continue  # stray blank line between messages
            headers.append(line)
        try:
            length = parse_content_length(headers)
        except FramingError as exc:
            log.warning("skipping a message: %s", exc)
            continue
        body = stream.read(length)
        if len(body) < length:
            log.warning("stream ended inside a message body")
            return None
        return body


async def read_message_async(reader: asyncio.StreamReader) -> bytes | None:
    while True:
        headers: list[bytes] = []
        while True:
            line = await reader.readline()
            if not line:
                return None
            if line in (b"\r\n", b"\n"):
                if headers:
                    break
                continue
            headers.append(line)
        try:
            length = parse_content_length(headers)
        except FramingError as exc:
            log.warning("skipping a message: %s", exc)
            continue
        try:
            return await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            log.warning("connection ended inside a message body")
            return None


async def read_message_limited(reader: asyncio.StreamReader, limits: ReadLimits) -> bytes | None:
    """One message body under `limits`; None at end of stream.

    Raises ConnectionLimitExceeded for a message larger than allowed (refused from its
    Content-Length, before reading the body), an idle client, and headers or a body that
    trickle in too slowly (slowloris), so one slow client cannot hold a connection forever.
    """
    while True:
        try:
            first = await asyncio.wait_for(reader.readline(), limits.idle_timeout_s)
        except TimeoutError as exc:
            raise ConnectionLimitExceeded(f"idle for {limits.idle_timeout_s:g} s") from exc
        except ValueError as exc:  # a line longer than the StreamReader's buffer limit
            raise ConnectionLimitExceeded(f"a header line is too long: {exc}") from exc
        if not first:
            return None
        if first in (b"\r\n", b"\n"):
            continue
        headers = await _rest_of_headers(reader, first, limits)
        if headers is None:
            return None
        try:
            length = parse_content_length(headers, max_bytes=limits.max_message_bytes)
        except MessageTooLarge as exc:
            raise ConnectionLimitExceeded(str(exc)) from exc
        except FramingError as exc:
            log.warning("skipping a message: %s", exc)
            continue
        try:
            return await asyncio.wait_for(reader.readexactly(length), limits.body_timeout_s)
        except TimeoutError as exc:
            raise ConnectionLimitExceeded(
                f"a {length}-byte body did not arrive within {limits.body_timeout_s:g} s"
            ) from exc
        except asyncio.IncompleteReadError:
            log.warning("connection ended inside a message body")
            return None


async def _rest_of_headers(
    reader: asyncio.StreamReader, first: bytes, limits: ReadLimits
) -> list[bytes] | None:
    headers = [first]
    try:
        async with asyncio.timeout(limits.header_timeout_s):
            while True:
                line = await reader.readline()
                if not line:
                    return None
                if line in (b"\r\n", b"\n"):
                    return headers
                headers.append(line)
                if len(headers) > limits.max_header_lines:
                    raise ConnectionLimitExceeded(f"more than {limits.max_header_lines} headers")
    except TimeoutError as exc:
        raise ConnectionLimitExceeded(
            f"headers not complete within {limits.header_timeout_s:g} s"
        ) from exc
    except ValueError as exc:
        raise ConnectionLimitExceeded(f"a header line is too long: {exc}") from exc


class FdReader:
    """Buffered reads straight from a file descriptor.

    The stdin reader thread is a daemon blocked in a read when the server exits; with
    Python's BufferedReader it would hold the buffer's lock and abort interpreter shutdown.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = os.read(self._fd, 65536)
        if not chunk:
            self._eof = True
            return False
        self._buffer += chunk
        return True

    def readline(self) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if not self._fill():
                line = bytes(self._buffer)
                self._buffer.clear()
                return line

    def read(self, count: int) -> bytes:
        while len(self._buffer) < count and self._fill():
            pass
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data


def start_stdin_reader(
    stream: BinaryIO, loop: asyncio.AbstractEventLoop, deliver: Callable[[bytes | None], None]
) -> threading.Thread:
    """Read stdin on a daemon thread (so a blocked read never holds up exit)."""
    reader = FdReader(stream.fileno())

    def run() -> None:
        while True:
            try:
                body = read_message_blocking(reader)  # type: ignore[arg-type]
            except (OSError, ValueError) as exc:
                log.warning("stdin closed: %s", exc)
                body = None
            try:
                loop.call_soon_threadsafe(deliver, body)
            except RuntimeError:  # the loop is closed: we are exiting
                return
            if body is None:
                return

    thread = threading.Thread(target=run, name="ouzel-stdin", daemon=True)
    thread.start()
    return thread


class StdoutWriter:
    """pygls writer interface over a binary stream; a lock keeps messages whole.

    A client that quits without waiting for the last answer closes the pipe: that is the
    end of the connection, not an error, so writes after it are dropped quietly.
    """

    def __init__(self, stream: BinaryIO, on_closed: Callable[[], object] = lambda: None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._closed = False
        self._on_closed = on_closed

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._stream.write(data)
                self._stream.flush()
                return
            except (BrokenPipeError, ConnectionResetError, ValueError):
                self._closed = True
        # Outside the lock: this log line is itself forwarded to the client
        # (window/logMessage), which writes again; under the lock that would deadlock.
        log.info("the client closed its end of stdout; dropping further output")
        self._on_closed()

    def close(self) -> None:
        with self._lock:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                pass


class StreamWriterAdapter:
    """pygls writer interface over an asyncio StreamWriter (TCP)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    def write(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()
