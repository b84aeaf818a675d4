"""Logging: a log file in the user's state folder and `window/logMessage` to the editor.

Every record made while a request or notification is handled carries its method and id
(`record.lsp`, e.g. "textDocument/inlineCompletion#42"), through a context variable that
the protocol sets before it runs a handler.
"""

from __future__ import annotations

import contextvars
import logging
import logging.handlers
from collections.abc import Callable
from pathlib import Path

import platformdirs

LSP_CONTEXT: contextvars.ContextVar[str] = contextvars.ContextVar("ouzel_lsp_context", default="-")

LEVELS = {
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(lsp)s] %(message)s"


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.lsp = LSP_CONTEXT.get()
        return True


def state_dir() -> Path:
    """Where ouzel keeps logs and local telemetry ($XDG_STATE_HOME/ouzel)."""
    return Path(platformdirs.user_state_dir("ouzel", appauthor=False))


def default_log_file() -> Path:
    return state_dir() / "ouzel.log"


def configure(level: str = "info", log_file: Path | None = None) -> Path | None:
    """Set up the `ouzel` logger with a rotating file; returns the file actually used."""
    root = logging.getLogger("ouzel")
    root.setLevel(LEVELS.get(level, logging.INFO))
    root.propagate = False
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()
    # pygls logs every message body at INFO: that is user code, keep it out of the log
    # unless the user asked for debug logging.
    logging.getLogger("pygls").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    path = log_file or default_log_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=5_000_000, backupCount=2, encoding="utf-8"
        )
    except OSError:
        return None
    file_handler.setFormatter(logging.Formatter(FORMAT))
    file_handler.addFilter(ContextFilter())
    root.addHandler(file_handler)
    pygls_logger = logging.getLogger("pygls")
    if not any(isinstance(h, logging.FileHandler) for h in pygls_logger.handlers):
        pygls_logger.addHandler(file_handler)
    return path


def set_level(level: str) -> None:
    logging.getLogger("ouzel").setLevel(LEVELS.get(level, logging.INFO))


class ClientLogHandler(logging.Handler):
    """Forwards `ouzel.*` records to the editor as `window/logMessage`.

    `send(level, text)` must be safe to call from any thread (the session posts it to the
    event loop). Records from inside `send` are dropped to avoid loops.
    """

    def __init__(self, send: Callable[[int, str], None], level: int = logging.INFO) -> None:
        super().__init__(level)
        self._send = send
        self._busy = contextvars.ContextVar("busy", default=False)
        self.setFormatter(logging.Formatter("[%(lsp)s] %(message)s"))
        self.addFilter(ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        if self._busy.get():
            return
        token = self._busy.set(True)
        try:
            self._send(record.levelno, self.format(record))
        except Exception:  # never let logging take a handler down
            pass
        finally:
            self._busy.reset(token)
