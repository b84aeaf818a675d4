"""Search the index: chunks by BM25 full-text search, symbols by fuzzy name.

Symbol ranking, best first: exact name, prefix, camelCase/snake_case humps ("gUN" or
"gun" → getUserName, "ws" → workspace_symbol), substring; within a tier, a match in the
query's own letter case, then shorter names, then types before functions before the rest.
A query with a "." matches qualified names (`Index.update`). A query of several words
("user name") also gets full-text matches over the words of the names.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from ouzel.indexer.index import WorkspaceIndex

log = logging.getLogger("ouzel.indexer.search")

KIND_ORDER = [
    "class",
    "interface",
    "struct",
    "trait",
    "enum",
    "type",
    "function",
    "method",
    "constructor",
    "impl",
    "module",
    "namespace",
    "macro",
    "constant",
    "field",
    "enum_member",
    "variable",
    "heading",
]
MAX_QUERY_TERMS = 64
HUMP_CANDIDATES = 4000
_TERM = re.compile(r"[^\W_]\w*|\w+")


@dataclass(frozen=True)
class ChunkHit:
    path: str  # workspace-relative, posix
    start_line: int  # 0-based
    end_line: int  # 0-based, inclusive
    text: str
    score: float
    symbols: list[str] = field(default_factory=list)
    language: str = ""


@dataclass(frozen=True)
class SymbolHit:
    name: str
    qualified_name: str
    kind: str
    language: str
    path: str  # workspace-relative, posix
    start_line: int  # the whole definition; 0-based lines, code point columns
    start_col: int
    end_line: int
    end_col: int
    signature: str
    doc: str
    parent: str
    name_start_line: int = 0  # the name alone
    name_start_col: int = 0
    name_end_line: int = 0
    name_end_col: int = 0
    match: str = ""  # "exact", "prefix", "humps", "substring" or "words"
    score: float = 0.0


class SymbolSnapshot:
    """All symbols of an index in memory (Arrow), with the columns ranking needs."""

    def __init__(self, table: pa.Table) -> None:
        table = table.combine_chunks()
        self.table = table
        self.name_lower = pc.utf8_lower(table.column("name"))
        self.qualified_lower = pc.utf8_lower(table.column("qualified_name"))
        self.name_length = pc.utf8_length(table.column("name"))
        rank = pc.index_in(table.column("kind"), value_set=pa.array(KIND_ORDER))
        self.kind_rank = pc.fill_null(rank, len(KIND_ORDER))

    @property
    def size(self) -> int:
        return int(self.table.num_rows)

    def replace(self, removed_paths: Collection[str], added: pa.Table) -> SymbolSnapshot:
        """A new snapshot without the rows of `removed_paths`, plus `added`."""
        table = self.table
        if removed_paths and table.num_rows:
            keep = pc.invert(
                pc.is_in(table.column("path"), value_set=pa.array(list(removed_paths)))
            )
            table = table.filter(keep)
        if added.num_rows:
            table = pa.concat_tables([table, added.select(table.column_names)])
        return SymbolSnapshot(table)


def _word_starts(name: str) -> list[int]:
    starts = []
    previous = ""
    for index, char in enumerate(name):
        starts_word = (
            index == 0
            or (char.isalnum() and not previous.isalnum())
            or (char.isupper() and (previous.islower() or previous.isdigit()))
            # "HTTPServer": the S starts a word
            or (char.isupper() and index + 1 < len(name) and name[index + 1].islower())
            or (char.isdigit() and not previous.isdigit())
        )
        if starts_word:
            starts.append(index)
        previous = char
    return starts


def humps_match(query: str, name: str) -> bool:
    """True when the query's letters start words of `name` in order (each may continue
    into the following letters of its word): "gUN", "gun", "getun" → getUserName."""
    lower_query = query.lower()
    lower_name = name.lower()
    starts = _word_starts(name)

    @cache
    def match(qi: int, ni: int, first: bool) -> bool:
        if qi == len(lower_query):
            return True
        char = lower_query[qi]
        if (
            not first
            and ni < len(lower_name)
            and lower_name[ni] == char
            and match(qi + 1, ni + 1, False)
        ):
            return True
        for start in starts:
            if start >= ni and lower_name[start] == char and match(qi + 1, start + 1, False):
                return True
        return False

    return match(0, 0, True)


def _subsequence_regex(query: str) -> str:
    return "(?i)" + ".*".join(re.escape(char) for char in query)


def _top(snapshot: SymbolSnapshot, mask: Any, case_mask: Any, k: int) -> list[int]:
    """Row numbers of the k best rows in `mask` (case match, length, kind, path)."""
    indices = pc.indices_nonzero(pc.fill_null(mask, False))
    if len(indices) == 0 or k <= 0:
        return []
    case_miss = pc.invert(pc.fill_null(pc.take(case_mask, indices), False))
    ranking = pa.table(
        {
            "case_miss": case_miss,
            "length": pc.take(snapshot.name_length, indices),
            "kind": pc.take(snapshot.kind_rank, indices),
            "path": pc.take(snapshot.table.column("path"), indices),
            "row": indices,
        }
    )
    keys = [
        ("case_miss", "ascending"),
        ("length", "ascending"),
        ("kind", "ascending"),
        ("path", "ascending"),
    ]
    if len(indices) > k:
        chosen = pc.select_k_unstable(ranking, k=k, sort_keys=keys)
        ranking = ranking.take(chosen)
    ordered = ranking.take(pc.sort_indices(ranking, sort_keys=keys))
    rows: list[int] = ordered.column("row").to_pylist()
    return rows


def rank_symbols(
    snapshot: SymbolSnapshot, query: str, limit: int, kind: str | Collection[str] | None = None
) -> list[tuple[int, str]]:
    """(row, tier) of the best matches in `snapshot`."""
    query = query.strip()
    if snapshot.size == 0 or limit <= 0:
        return []
    allowed: Any = None
    if kind:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        allowed = pc.is_in(snapshot.table.column("kind"), value_set=pa.array(kinds))
    if not query:
        everything = allowed if allowed is not None else pa.array([True] * snapshot.size)
        return [(row, "all") for row in _top(snapshot, everything, everything, limit)]
    qualified = "." in query
    original = snapshot.table.column("qualified_name" if qualified else "name")
    lowered = snapshot.qualified_lower if qualified else snapshot.name_lower
    needle = query.lower()

    def restrict(mask: Any) -> Any:
        return mask if allowed is None else pc.and_(mask, allowed)

    results: list[tuple[int, str]] = []
    taken = pa.array([False] * snapshot.size)

    def add_tier(mask: Any, case_mask: Any, tier: str) -> None:
        nonlocal taken
        mask = pc.and_(restrict(mask), pc.invert(taken))
        rows = _top(snapshot, mask, case_mask, limit - len(results))
        results.extend((row, tier) for row in rows)
        taken = pc.or_(taken, mask)

    add_tier(pc.equal(lowered, needle), pc.equal(original, query), "exact")
    if len(results) < limit:
        add_tier(pc.starts_with(lowered, needle), pc.starts_with(original, query), "prefix")
    if len(results) < limit and not qualified and len(query) > 1 and " " not in query:
        candidates = pc.and_(
            restrict(pc.match_substring_regex(lowered, _subsequence_regex(needle))),
            pc.invert(taken),
        )
        names = snapshot.table.column("name")
        rows = _top(snapshot, candidates, candidates, HUMP_CANDIDATES)
        matched = [row for row in rows if humps_match(query, names[row].as_py())]
        results.extend((row, "humps") for row in matched[: limit - len(results)])
        if matched:
            hit = [False] * snapshot.size
            for row in matched:
                hit[row] = True
            taken = pc.or_(taken, pa.array(hit))
    if len(results) < limit:
        add_tier(
            pc.match_substring(lowered, needle), pc.match_substring(original, query), "substring"
        )
    return results[:limit]


def _symbol_hit(row: dict[str, Any], tier: str, score: float) -> SymbolHit:
    return SymbolHit(
        name=row["name"],
        qualified_name=row["qualified_name"],
        kind=row["kind"],
        language=row["language"],
        path=row["path"],
        start_line=row["start_line"],
        start_col=row["start_col"],
        end_line=row["end_line"],
        end_col=row["end_col"],
        signature=row["signature"],
        doc=row["doc"],
        parent=row["parent"],
        name_start_line=row["name_start_line"],
        name_start_col=row["name_start_col"],
        name_end_line=row["name_end_line"],
        name_end_col=row["name_end_col"],
        match=tier,
        score=score,
    )


TIER_SCORES = {"exact": 4.0, "prefix": 3.0, "humps": 2.0, "substring": 1.0, "all": 0.0}


def search_symbols(
    index: WorkspaceIndex,
    query: str,
    limit: int = 20,
    kind: str | Collection[str] | None = None,
) -> list[SymbolHit]:
    """Symbols whose names match `query`, best first (see the module docstring)."""
    snapshot = index.symbol_snapshot()
    ranked = rank_symbols(snapshot, query, limit, kind)
    records = snapshot.table.take([row for row, _ in ranked]).to_pylist() if ranked else []
    hits: list[SymbolHit] = []
    for position, ((_, tier), record) in enumerate(zip(ranked, records, strict=True)):
        hits.append(_symbol_hit(record, tier, TIER_SCORES[tier] - position / (len(ranked) + 1)))
    # Words ("user name") match no single name: look them up in the words of the names.
    if len(hits) < limit and " " in query.strip() and query_terms(query):
        hits.extend(_symbols_by_words(index, query, limit - len(hits), kind, hits))
    return hits


def _symbols_by_words(
    index: WorkspaceIndex,
    query: str,
    limit: int,
    kind: str | Collection[str] | None,
    already: list[SymbolHit],
) -> list[SymbolHit]:
    seen = {(h.path, h.start_line, h.name) for h in already}
    kinds = {kind} if isinstance(kind, str) else set(kind or ())
    table = index.read_store(
        lambda store: store.search_symbol_words(
            " ".join(query_terms(query)), limit * 2 + len(seen)
        ),
        None,
    )
    if table is None:
        return []
    hits = []
    for record in table.to_pylist():
        key = (record["path"], record["start_line"], record["name"])
        if key in seen or (kinds and record["kind"] not in kinds):
            continue
        seen.add(key)
        hits.append(_symbol_hit(record, "words", float(record.get("_score") or 0.0) / 100))
        if len(hits) >= limit:
            break
    return hits


def query_terms(query: str) -> list[str]:
    """Words of a free-text or code query, once each, at most MAX_QUERY_TERMS."""
    seen: dict[str, None] = {}
    for term in _TERM.findall(query):
        seen.setdefault(term, None)
        if len(seen) >= MAX_QUERY_TERMS:
            break
    return list(seen)


def search_chunks(
    index: WorkspaceIndex,
    query: str,
    limit: int = 10,
    exclude_paths: Collection[str] = (),
) -> list[ChunkHit]:
    """Chunks ranked by BM25 over their text (identifiers, words), best first."""
    terms = query_terms(query)
    if not terms or limit <= 0:
        return []
    columns = ["path", "language", "start_line", "end_line", "symbols", "text", "_score"]
    table = index.read_store(
        lambda store: store.search_text(" ".join(terms), limit, list(exclude_paths), columns),
        None,
    )
    if table is None:
        return []
    return [
        ChunkHit(
            path=record["path"],
            start_line=record["start_line"],
            end_line=record["end_line"],
            text=record["text"],
            score=float(record.get("_score") or 0.0),
            symbols=list(record["symbols"] or []),
            language=record["language"],
        )
        for record in table.to_pylist()
    ]
