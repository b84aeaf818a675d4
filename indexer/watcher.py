"""Watch a workspace with watchfiles (Rust notify) and report changed paths in batches.

Events under ignored folders are dropped here, except the ignore files themselves, whose
change makes the index rescan. A batch is reported once no event came for `quiet_ms`
(a save shows up at once), or after MAX_BATCH_MS of continuous events (a branch switch
arrives as a few big batches, which the scheduler merges).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import watchfiles

from ouzel.indexer.walk import IGNORE_FILES, IgnoreRules

log = logging.getLogger("ouzel.indexer.watcher")

RULE_FILES = frozenset(IGNORE_FILES)
MAX_BATCH_MS = 2000


class Watcher:
    def __init__(
        self,
        root: Path,
        rules: IgnoreRules,
        on_change: Callable[[set[str]], None],
        quiet_ms: int,
    ) -> None:
        self.root = root
        self.rules = rules
        self.on_change = on_change
        self.quiet_ms = max(1, quiet_ms)
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"ouzel-watch-{root.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _wanted(self, _change: watchfiles.Change, path: str) -> bool:
        try:
            relative = Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return False
        name = relative.rpartition("/")[2]
        if name in RULE_FILES or relative == ".ouzel/ignore":
            return True
        return self.rules.excluded(relative) is None

    def _run(self) -> None:
        try:
            for changes in watchfiles.watch(
                self.root,
                watch_filter=self._wanted,
                debounce=MAX_BATCH_MS,
                step=self.quiet_ms,
                stop_event=self._stop,
                raise_interrupt=False,
                ignore_permission_denied=True,
            ):
                paths = {path for _, path in changes}
                if paths:
                    try:
                        self.on_change(paths)
                    except Exception:
                        log.exception("handling file changes failed")
        except Exception as exc:  # e.g. the inotify watch limit
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "watching %s failed: %s; changes on disk are seen on save only", self.root, exc
            )

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)
