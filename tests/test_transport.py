"""The stdio writer when the client has gone: no error, no deadlock, one close event."""

from __future__ import annotations

import io
import logging
import threading

from ouzel.server.logs import ClientLogHandler
from ouzel.server.transport import StdoutWriter


class ClosedPipe(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise BrokenPipeError("the client closed stdout")


def test_a_closed_pipe_ends_output_even_when_its_log_line_goes_to_the_client() -> None:
    closed: list[bool] = []
    writer = StdoutWriter(ClosedPipe(), on_closed=lambda: closed.append(True))  # type: ignore[arg-type]
    # As in a session: every ouzel log record is forwarded to the client through the
    # same writer (window/logMessage), so the writer's own "client closed" line loops back.
    handler = ClientLogHandler(lambda level, text: writer.write(text.encode()))
    logger = logging.getLogger("ouzel")
    level = logger.level
    logger.setLevel(logging.INFO)  # as `ouzel serve` configures it
    logger.addHandler(handler)
    try:
        done = threading.Event()

        def write() -> None:
            writer.write(b"Content-Length: 2\r\n\r\n{}")
            writer.write(b"after the close")
            done.set()

        threading.Thread(target=write, daemon=True).start()
        assert done.wait(5), "StdoutWriter.write deadlocked on its own log line"
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert closed == [True]
