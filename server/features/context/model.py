"""Plain types of the context engine: what a request asks for and what it gets back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# Where a piece of context came from. "prefix" and "suffix" are the local window.
Source = Literal["prefix", "suffix", "definition", "bm25", "recent", "vector"]
RETRIEVED_SOURCES: tuple[Source, ...] = ("definition", "vector", "bm25", "recent")


@dataclass(frozen=True)
class ContextRequest:
    """A cursor in one snapshot of a document.

    `text` and `version` are the snapshot the request was made on: nothing from an older
    version of this document may appear in the answer.
    """

    uri: str
    path: Path | None  # None for untitled buffers
    language: str
    version: int
    text: str
    offset: int  # code points into `text`
    root: Path | None = None  # the workspace folder holding `path`


@dataclass
class Candidate:
    """A piece of code some source proposes, before ranking and packing."""

    source: Source
    path: Path
    start_line: int  # 0-based, inclusive
    end_line: int  # 0-based, exclusive
    text: str
    rank: int  # position in its source's own ranking (0 = best)
    boost: float = 1.0  # >1 for definitions of names at the cursor
    label: str = ""  # e.g. the name a definition defines
    also_from: list[Source] = field(default_factory=list)  # merged duplicates
    score: float = 0.0  # set by fusion
    outline: bool = False  # a summary of a whole module, not one region of it
    via: str = ""  # how it was reached when not directly ("search": a name in a search hit)


@dataclass(frozen=True)
class ContextPart:
    """One piece of the packed prompt, as shown by `ouzel/context`."""

    source: Source
    path: Path | None
    display_path: str  # the path as written in the prompt
    start_line: int  # 0-based, inclusive
    end_line: int  # 0-based, exclusive
    score: float
    tokens: int
    text: str
    label: str = ""
    also_from: tuple[Source, ...] = ()  # other sources that proposed the same lines
    # For the local window: code point offsets into the request's text.
    start_offset: int | None = None
    end_offset: int | None = None


@dataclass
class ContextResult:
    """Packed repository context for one request."""

    parts: list[ContextPart]  # retrieved parts in prompt order (stable parts first)
    budget: int  # tokens allowed for the retrieved parts
    tokens: int  # tokens the retrieved parts take, counted on their rendered text
    timings_ms: dict[str, float] = field(default_factory=dict)
    skipped: str | None = None  # why no context was gathered (secret file, disabled, …)
    candidates: int = 0  # how many candidates competed for the budget
