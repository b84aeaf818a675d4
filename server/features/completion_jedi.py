"""Jedi's semantic completions for Python, off the event loop and time-capped.

Jedi is not thread-safe and cannot be interrupted, so one call runs at a time on a
worker thread; a call that outlives its time cap keeps running, and requests arriving
meanwhile get no Jedi items instead of queueing behind it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("ouzel.server.completion.jedi")


@dataclass(frozen=True)
class JediItem:
    name: str  # the whole identifier
    kind: str  # Jedi's type: "function", "class", "module", "instance", "keyword", …
    detail: str
    prefix_length: int  # characters of `name` already typed before the cursor


class JediCompleter:
    def __init__(self) -> None:
        self._running: concurrent.futures.Future[list[JediItem]] | None = None
        self._projects: dict[Path, object] = {}

    async def complete(
        self,
        text: str,
        line: int,
        column: int,
        path: Path | None,
        root: Path | None,
        timeout_s: float,
    ) -> list[JediItem]:
        """Completions at (line, column) in code points, 0-based; [] on timeout or error."""
        if self._running is not None and not self._running.done():
            log.debug("jedi is still busy with an earlier request; no semantic items")
            return []
        future: concurrent.futures.Future[list[JediItem]] = concurrent.futures.Future()
        self._running = future

        def run() -> None:
            try:
                future.set_result(self._complete(text, line, column, path, root))
            except BaseException as exc:  # pragma: no cover (_complete catches Jedi's errors)
                future.set_exception(exc)

        # A daemon thread: a Jedi call that overruns never holds up the server's exit.
        threading.Thread(target=run, name="ouzel-jedi", daemon=True).start()
        try:
            # Shielded: a timeout must not cancel `future`, which stays running (so later
            # requests skip Jedi instead of queueing) and is completed by the thread.
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout_s)
        except asyncio.TimeoutError:
            log.info("jedi took longer than %.0f ms; semantic items left out", timeout_s * 1000)
            return []

    def _complete(
        self, text: str, line: int, column: int, path: Path | None, root: Path | None
    ) -> list[JediItem]:
        import jedi

        try:
            project = self._project(root) if root is not None else None
            script = jedi.Script(code=text, path=path, project=project)
            completions = script.complete(line + 1, column)
        except Exception as exc:  # Jedi raises on odd code and positions; never fatal
            log.warning("jedi failed at %s:%d:%d: %s", path, line + 1, column, exc)
            return []
        return [
            JediItem(c.name, c.type, c.description, len(c.name) - len(c.complete or ""))
            for c in completions[:200]
        ]

    def _project(self, root: Path) -> object:
        import jedi

        project = self._projects.get(root)
        if project is None:
            project = self._projects[root] = jedi.Project(root)
        return project
