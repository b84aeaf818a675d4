"""A Jedi call that overruns its time cap keeps running; it is not cancelled under the thread."""

from __future__ import annotations

import threading
from pathlib import Path

from ouzel.server.features.completion_jedi import JediCompleter, JediItem
from tests.waiting import wait_for


class SlowCompleter(JediCompleter):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def _complete(
        self, text: str, line: int, column: int, path: Path | None, root: Path | None
    ) -> list[JediItem]:
        self.release.wait(30)
        return [JediItem("late", "function", "late()", 0)]


async def test_an_overrun_call_skips_later_requests_and_completes_its_future() -> None:
    completer = SlowCompleter()
    assert await completer.complete("x", 0, 1, None, None, timeout_s=0.01) == []
    running = completer._running
    assert running is not None and not running.cancelled() and not running.done()
    # While Jedi is busy, a new request answers at once without semantic items.
    assert await completer.complete("x", 0, 1, None, None, timeout_s=5) == []
    completer.release.set()
    wait_for(running.done, 10, "the overrun Jedi call to finish")
    assert running.result()[0].name == "late"
