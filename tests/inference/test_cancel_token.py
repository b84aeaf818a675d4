"""CancelToken callbacks: how a stalled stream learns about a cancel without polling."""

from __future__ import annotations

import asyncio
import threading

from ouzel.inference.types import CancelToken


def test_callbacks_run_once_on_cancel_and_not_after_unsubscribe() -> None:
    token = CancelToken()
    calls: list[str] = []
    token.on_cancel(lambda: calls.append("a"))
    forget = token.on_cancel(lambda: calls.append("b"))
    forget()
    token.cancel()
    token.cancel()
    assert calls == ["a"]
    assert token.cancelled


def test_callback_registered_after_cancel_runs_at_once() -> None:
    token = CancelToken()
    token.cancel()
    calls: list[int] = []
    token.on_cancel(lambda: calls.append(1))
    assert calls == [1]


async def test_cancel_from_another_thread_wakes_an_async_waiter() -> None:
    token = CancelToken()
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()
    token.on_cancel(lambda: loop.call_soon_threadsafe(woken.set))
    threading.Timer(0.05, token.cancel).start()
    await asyncio.wait_for(woken.wait(), timeout=2)
