"""Merging the sources' lists: reciprocal rank fusion, then duplicates folded together.

Reciprocal rank fusion (Cormack et al., SIGIR 2009) scores a candidate by the sum of
weight / (k + rank) over the lists it appears in, so no source's raw scores have to be
comparable with another's. Definitions of names at the cursor carry a boost. Two
candidates covering mostly the same lines of one file are one candidate: the better one
keeps its text and adds the other's score (found twice is a good sign).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from ouzel.server.features.context.model import Candidate, Source

RRF_K = 10.0
# Definitions come from a semantic engine and are usually exactly what the line needs;
# search hits and recent code are similar text, often useful, rarely the one thing needed.
WEIGHTS: Mapping[Source, float] = {
    "definition": 1.0,
    "vector": 0.4,
    "bm25": 0.4,
    "recent": 0.4,
}


def fuse(
    candidates: Iterable[Candidate],
    weights: Mapping[Source, float] = WEIGHTS,
    k: float = RRF_K,
) -> list[Candidate]:
    """Score, fold duplicates, and sort best first; the inputs are left as they were."""
    scored = [replace(c, also_from=list(c.also_from)) for c in candidates]
    for candidate in scored:
        candidate.score = (
            weights.get(candidate.source, 0.5) * candidate.boost / (k + candidate.rank)
        )
    scored.sort(key=lambda c: -c.score)
    kept: list[Candidate] = []
    by_path: dict[Path, list[Candidate]] = {}
    for candidate in scored:
        twin = next((o for o in by_path.get(candidate.path, []) if same_region(o, candidate)), None)
        if twin is not None:
            twin.score += candidate.score
            if candidate.source != twin.source and candidate.source not in twin.also_from:
                twin.also_from.append(candidate.source)
            if _encloses(candidate, twin):  # a method's class: show the class
                twin.start_line, twin.end_line = candidate.start_line, candidate.end_line
                twin.text = candidate.text
            continue
        kept.append(candidate)
        by_path.setdefault(candidate.path, []).append(candidate)
    kept.sort(key=lambda c: -c.score)
    return kept


def _encloses(outer: Candidate, inner: Candidate) -> bool:
    """Two definitions where one holds the other (not a search hit's bigger text)."""
    return (
        outer.source == inner.source == "definition"
        and not outer.outline
        and outer.start_line <= inner.start_line
        and inner.end_line <= outer.end_line
        and (outer.end_line - outer.start_line) > (inner.end_line - inner.start_line)
    )


def same_region(a: Candidate, b: Candidate) -> bool:
    """True when more than half of the smaller range lies inside the other.

    A module outline spans its whole file but shows only headers: it is the same as
    another outline of that file, never as a region of it.
    """
    if a.outline or b.outline:
        return a.outline and b.outline
    overlap = min(a.end_line, b.end_line) - max(a.start_line, b.start_line)
    smaller = min(a.end_line - a.start_line, b.end_line - b.start_line)
    return overlap > 0 and overlap * 2 > smaller


def drop_window(
    candidates: Iterable[Candidate], path: Path | None, first_line: int, last_line: int
) -> list[Candidate]:
    """Leave out what the local window (lines first..last of `path`) already shows."""
    if path is None:
        return list(candidates)
    return [
        c
        for c in candidates
        if c.path != path or c.outline or c.end_line <= first_line or c.start_line > last_line
    ]
