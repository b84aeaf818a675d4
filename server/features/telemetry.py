"""Local completion telemetry: what was served, shown, accepted; never sent anywhere.

Events are JSON lines appended to `completions.jsonl` in ouzel's state folder. They hold
numbers and ids, never code: kind (cold / reused / cache), latency, token counts, lengths,
document versions, a hash of the prompt. Events: `model` (every model call, with its KV
reuse), `served` (a suggestion returned), `shown`, `accepted`, `partial`.
`ouzel stats` reads them back (`summarize`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ouzel.server.logs import state_dir

log = logging.getLogger("ouzel.server.telemetry")

FILE_NAME = "completions.jsonl"


def telemetry_path() -> Path:
    return state_dir() / FILE_NAME


class Telemetry:
    """Appends events to one file; safe from any thread; a write failure is logged once.

    The file stays open (line-buffered): a type-through answer must not wait for an open().
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or telemetry_path()
        self._lock = threading.Lock()
        self._handle: TextIO | None = None
        self._broken = False

    def record(self, event: str, **fields: Any) -> None:
        line = json.dumps({"ts": round(time.time(), 3), "event": event, **fields}) + "\n"
        with self._lock:
            if self._broken:
                return
            try:
                if self._handle is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._handle = self.path.open("a", encoding="utf-8", buffering=1)
                self._handle.write(line)
            except OSError as exc:
                self._broken = True
                log.warning("completion telemetry is off: cannot write %s (%s)", self.path, exc)

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Events from a telemetry file, skipping lines that are not valid JSON objects."""
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("event"), str):
                yield event


@dataclass
class Summary:
    """Counts are events; rates are per suggestion (its id), so a suggestion taken in
    parts and then whole counts once."""

    served: int = 0
    model_calls: int = 0
    cache_hits: int = 0
    shown_ids: set[str] = field(default_factory=set)
    served_ids: set[str] = field(default_factory=set)
    accepted_ids: set[str] = field(default_factory=set)
    partial_ids: set[str] = field(default_factory=set)
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)  # by kind
    prompt_tokens: int = 0
    reused_tokens: int = 0
    first_ts: float | None = None
    last_ts: float | None = None

    @property
    def _base(self) -> set[str]:
        """Suggestions the user saw (or, for clients that never say, those served)."""
        return self.shown_ids or self.served_ids

    @property
    def acceptance_rate(self) -> float | None:
        """Share of suggestions accepted whole."""
        base = self._base
        return len(self.accepted_ids & base) / len(base) if base else None

    @property
    def any_acceptance_rate(self) -> float | None:
        """Share of suggestions accepted whole or in part."""
        base = self._base
        return len((self.accepted_ids | self.partial_ids) & base) / len(base) if base else None

    @property
    def cache_hit_rate(self) -> float | None:
        return self.cache_hits / self.served if self.served else None

    @property
    def reused_share(self) -> float | None:
        return self.reused_tokens / self.prompt_tokens if self.prompt_tokens else None


def summarize(events: Iterable[dict[str, Any]], since: float | None = None) -> Summary:
    summary = Summary()
    for event in events:
        ts = event.get("ts")
        if not isinstance(ts, (int, float)) or (since is not None and ts < since):
            continue
        summary.first_ts = ts if summary.first_ts is None else min(summary.first_ts, ts)
        summary.last_ts = ts if summary.last_ts is None else max(summary.last_ts, ts)
        kind = event["event"]
        suggestion = str(event.get("id"))
        if kind == "served":
            summary.served += 1
            summary.served_ids.add(suggestion)
            summary.cache_hits += event.get("kind") in ("cache", "speculative")
            latency = event.get("latencyMs")
            if isinstance(latency, (int, float)):
                summary.latencies_ms.setdefault(str(event.get("kind")), []).append(latency)
        elif kind == "model":  # every model call, also those a newer keystroke cancelled
            summary.model_calls += 1
            summary.prompt_tokens += int(event.get("promptTokens") or 0)
            summary.reused_tokens += int(event.get("reusedTokens") or 0)
        elif kind == "shown":
            summary.shown_ids.add(suggestion)
        elif kind == "accepted":
            summary.accepted_ids.add(suggestion)
        elif kind == "partial":
            summary.partial_ids.add(suggestion)
    return summary


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (no interpolation): a value that really occurred."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(-(-fraction * len(ordered) // 1)) - 1))
    return ordered[rank]
