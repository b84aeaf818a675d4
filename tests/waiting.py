"""The one way tests wait for a condition: poll it, and fail saying what never happened."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | bool | None], timeout: float, what: str, every: float = 0.02
) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    Raises AssertionError naming `what` (and the last value seen) after `timeout` seconds:
    a wait never passes silently.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what} (last: {value!r})"
            )
        time.sleep(every)


async def wait_until(
    condition: Callable[[], T | bool | None], timeout: float, what: str, every: float = 0.01
) -> T:
    """`wait_for` inside a test's event loop: polls without blocking the loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what} (last: {value!r})"
            )
        await asyncio.sleep(every)
