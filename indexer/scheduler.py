"""Keeps one `WorkspaceIndex` fresh from a queue, on its own thread.

Requests (a full scan, changed paths, editor buffers) are coalesced: once work arrives,
the thread waits for a quiet moment (`quiet_s` without new paths, up to BURST_MAX_S), so a
branch switch touching thousands of files is one update while a single save goes through
at once. Buffers wait until they have been still for `text_debounce_s`. The thread
opens the index itself (opening may rebuild it), so nothing here blocks the caller.
A read-only index (another process writes) retries to become the writer now and then.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ouzel.indexer.watcher import Watcher

if TYPE_CHECKING:  # the index pulls in LanceDB: imported on the scheduler's thread only
    from ouzel.indexer.index import Progress, UpdateSummary, WorkspaceIndex

log = logging.getLogger("ouzel.indexer.scheduler")

WRITER_RETRY_S = 2.0
BURST_MAX_S = 3.0
IDLE_UPKEEP_S = 20.0
# Path batches at least this big are announced like a full update (progress, summary).
ANNOUNCE_PATHS = 50


class ProgressSink(Protocol):
    """Where an update reports its progress (the server turns this into `$/progress`)."""

    def begin(self, title: str) -> None: ...

    def report(self, progress: Progress) -> None: ...

    def end(self, summary: UpdateSummary) -> None: ...


class IndexScheduler:
    def __init__(
        self,
        open_index: Callable[[], WorkspaceIndex],
        root: Path,
        quiet_s: float = 0.01,
        watch_debounce_ms: int = 50,
        text_debounce_s: float = 0.5,
        watch: bool = True,
        sink: ProgressSink | None = None,
    ) -> None:
        self.root = root
        self.quiet_s = quiet_s
        self.watch_debounce_ms = watch_debounce_ms
        self.text_debounce_s = text_debounce_s
        self.watch = watch
        self.sink = sink
        self.index: WorkspaceIndex | None = None
        self.watcher: Watcher | None = None
        self.open_error = ""
        self._open_index = open_index
        self._cond = threading.Condition()
        self._full = False
        self._paths: set[str] = set()
        self._texts: dict[str, tuple[str, float]] = {}
        self._busy = False
        self._stopped = False
        self._last_writer_try = 0.0
        self._arrivals = 0
        self._last_work = time.monotonic()
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"ouzel-index-{root.name}", daemon=True
        )

    # --- requests (any thread) ---------------------------------------------------------------

    def start(self, full: bool = True) -> None:
        with self._cond:
            self._full = self._full or full
        self._thread.start()

    def request_full(self) -> None:
        with self._cond:
            self._full = True
            self._cond.notify()

    def request_paths(self, paths: set[str] | list[str]) -> None:
        with self._cond:
            self._paths.update(str(p) for p in paths)
            self._arrivals += 1
            self._cond.notify()

    def request_text(self, path: str, text: str) -> None:
        with self._cond:
            self._texts[path] = (text, time.monotonic())
            self._cond.notify()

    def forget_text(self, path: str) -> None:
        """The buffer closed: index the file as it is on disk again."""
        with self._cond:
            self._texts.pop(path, None)
            self._paths.add(path)
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._paths) + len(self._texts) + (1 if self._full else 0)

    def wait_ready(self, timeout: float) -> WorkspaceIndex | None:
        self._ready.wait(timeout)
        return self.index

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or running (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (
                self._busy or self._full or self._paths or self._texts or not self._ready.is_set()
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def status(self) -> dict[str, Any]:
        index = self.index
        if index is None:
            result: dict[str, Any] = {"root": str(self.root), "phase": "opening"}
            if self.open_error:
                result["last_error"] = self.open_error
        else:
            result = index.status()
        result["pending"] = int(result.get("pending", 0)) + self.pending()
        result["watching"] = self.watcher is not None and not self.watcher.error
        if self.watcher is not None and self.watcher.error:
            result["watch_error"] = self.watcher.error
        return result

    def stop(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        index = self.index
        if index is not None:
            index.cancel()
        if self.watcher is not None:
            self.watcher.stop()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # --- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.index = self._open_index()
        except Exception as exc:
            self.open_error = f"opening the index failed: {exc}"
            log.exception("opening the index of %s failed", self.root)
            self._ready.set()
            return
        self._ready.set()
        index = self.index
        if self.watch:
            self.watcher = Watcher(
                index.root, index.rules, self.request_paths, self.watch_debounce_ms
            )
            self.watcher.start()
        try:
            self._loop(index)
        finally:
            if self.watcher is not None:
                self.watcher.stop()
                self.watcher.join(5)
            index.close()
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _take(self) -> tuple[bool, set[str], dict[str, str]] | None:
        """Wait for work (doing idle chores meanwhile); None when stopped."""
        while True:
            with self._cond:
                if self._stopped:
                    return None
                if not (self._full or self._paths or self._ripe_texts(remove=False)):
                    self._cond.wait(self.text_debounce_s if self._texts else WRITER_RETRY_S)
                if self._stopped:
                    return None
                ready = self._full or self._paths or self._ripe_texts(remove=False)
                if ready:
                    self._busy = True
            if ready:
                break
            self._idle_chores()
        self._wait_for_quiet()
        with self._cond:
            full, paths = self._full, self._paths
            self._full, self._paths = False, set()
            return full, paths, self._ripe_texts(remove=True)

    def _wait_for_quiet(self) -> None:
        """Let a burst of changes (a branch switch) finish arriving, then take all of it."""
        deadline = time.monotonic() + BURST_MAX_S
        while True:
            with self._cond:
                seen = self._arrivals
            time.sleep(self.quiet_s)
            with self._cond:
                if self._arrivals == seen or self._stopped or time.monotonic() >= deadline:
                    return

    def _ripe_texts(self, remove: bool) -> dict[str, str]:
        now = time.monotonic()
        ripe = {
            p: text for p, (text, at) in self._texts.items() if now - at >= self.text_debounce_s
        }
        if remove:
            for path in ripe:
                del self._texts[path]
        return ripe

    def _idle_chores(self) -> None:
        index = self.index
        if index is None:
            return
        now = time.monotonic()
        if not index.writable:
            if now - self._last_writer_try >= WRITER_RETRY_S:
                self._last_writer_try = now
                if index.try_become_writer():
                    self.request_full()
        elif now - self._last_work >= IDLE_UPKEEP_S:
            self._last_work = now
            index.upkeep()

    def _loop(self, index: WorkspaceIndex) -> None:
        while True:
            work = self._take()
            if work is None:
                return
            full, paths, texts = work
            try:
                if not index.writable and not index.try_become_writer():
                    continue  # another process writes this index and sees these changes too
                if full:
                    self._announced(index, "Indexing", index.update_all)
                elif len(paths) >= ANNOUNCE_PATHS:
                    self._announced(
                        index,
                        "Updating the index",
                        functools.partial(index.update_paths, paths),
                    )
                elif paths:
                    index.update_paths(paths)
                for path, text in texts.items():
                    index.update_text(path, text)
            except Exception:
                log.exception("updating the index of %s failed", self.root)
            finally:
                self._last_work = time.monotonic()
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _announced(
        self,
        index: WorkspaceIndex,
        title: str,
        run: Callable[[Callable[[Progress], None] | None], UpdateSummary],
    ) -> None:
        sink = self.sink
        if sink is None:
            run(None)
            return
        from ouzel.indexer.index import UpdateSummary

        sink.begin(f"{title} {index.root.name}")
        summary = UpdateSummary()
        try:
            summary = run(sink.report)
        finally:
            sink.end(summary)
