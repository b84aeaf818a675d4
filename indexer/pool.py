"""Parser processes: started on demand, shut down when idle, replaced when one crashes.

They use the "spawn" start method: the language server has threads, and forking a
process with threads can deadlock.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from ouzel.indexer.extract import worker_init

log = logging.getLogger("ouzel.indexer.pool")

T = TypeVar("T")
R = TypeVar("R")


class ParserPool:
    def __init__(self, workers: int, idle_s: float = 30.0) -> None:
        self.workers = workers
        self.idle_s = idle_s
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def _get(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=worker_init,
                    initargs=(os.getpid(),),
                )
            return self._executor

    def _idle_later(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.idle_s, self.shutdown)
            self._timer.daemon = True
            self._timer.start()

    def _discard_broken(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def run(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        in_flight: int,
        on_crash: Callable[[T, BaseException], R],
    ) -> Iterator[R]:
        """Yield `fn(item)` for every item as results arrive, at most `in_flight` queued.

        When a parser process dies, the items it may have been working on are retried one
        at a time in a new pool; one that kills it again becomes `on_crash(item, error)`.
        """
        suspects: list[T] = []
        try:
            yield from self._run(fn, list(items), in_flight, suspects)
            for item in suspects:
                try:
                    yield from self._run(fn, [item], 1, None)
                except BrokenProcessPool as exc:
                    self._discard_broken()
                    yield on_crash(item, exc)
        finally:
            self._idle_later()

    def _run(
        self, fn: Callable[[T], R], items: list[T], in_flight: int, suspects: list[T] | None
    ) -> Iterator[R]:
        executor = self._get()
        pending: dict[Future[Any], T] = {}
        queue = iter(items)
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < in_flight:
                item = next(queue, None)
                if item is None:
                    exhausted = True
                    break
                pending[executor.submit(fn, item)] = item
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                try:
                    result = future.result()
                except BrokenProcessPool:
                    if suspects is None:
                        raise
                    broken = True
                    continue
                pending.pop(future)
                yield result
            if broken:
                assert suspects is not None
                log.warning("a parser process died; retrying its files one at a time")
                suspects.extend(pending.values())
                pending.clear()
                self._discard_broken()
                executor = self._get()

    def shutdown(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
