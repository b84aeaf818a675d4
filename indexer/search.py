"""Search the index: chunks by BM25 full-text search, symbols by fuzzy name.

Symbol ranking, best first: exact name, prefix, camelCase/snake_case humps ("gUN" or
"gun" → getUserName, "ws" → workspace_symbol), substring; within a tier, a match in the
query's own letter case, then shorter names, code before tests, then types before
functions before the rest.
A query with a "." matches qualified names (`Index.update`). A query of several words
("user name") also gets full-text matches over the words of the names.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass, field
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
HUMP_CANDIDATES = 2000
_TERM = re.compile(r"[^\W_]\w*|\w+")


@dataclass(frozen=True)
class ChunkHit:
    """A chunk the index found: the one chunk hit type (the context engine, `ouzel search`
    and `ouzel ask` all read this one).

    Lines are 0-based and `end_line` is the chunk's last line (inclusive), as the index
    stores them; only text shown to a user counts from 1 (`shown_lines`).
    """

    path: str  # workspace-relative, posix
    start_line: int  # 0-based, inclusive
    end_line: int  # 0-based, inclusive
    text: str
    score: float
    symbols: list[str] = field(default_factory=list)
    language: str = ""

    def shown_lines(self) -> str:
        """`path:first-last` with lines counted from 1, as editors and compilers show them."""
        return f"{self.path}:{self.start_line + 1}-{self.end_line + 1}"


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


DERIVED = ("_name_lower", "_qualified_lower", "_length", "_kind_rank", "_chars", "_test")
# Test code ranks after the code it tests when names tie.
TEST_PATH = (
    r"(^|/)(tests?|testing|__tests__|spec)/|(^|/)test_[^/]*$|_test\.[^/.]+$|\.(test|spec)\.[^/.]+$"
)
MAX_CHUNKS = 6  # beyond this, kernels and `take` pay per chunk: copy into one


def _with_derived(table: pa.Table) -> pa.Table:
    """`table` plus the lower-case names, name lengths and kind ranks ranking needs."""
    rank = pc.index_in(table.column("kind"), value_set=pa.array(KIND_ORDER))
    lowered = pc.utf8_lower(table.column("name"))
    chars = pa.array([char_mask(name) for name in lowered.to_pylist()], pa.uint64())
    return (
        table.append_column("_name_lower", lowered)
        .append_column("_qualified_lower", pc.utf8_lower(table.column("qualified_name")))
        .append_column("_length", pc.utf8_length(table.column("name")))
        .append_column("_kind_rank", pc.fill_null(rank, len(KIND_ORDER)))
        .append_column("_chars", chars)
        .append_column("_test", pc.match_substring_regex(table.column("path"), TEST_PATH))
    )


class SymbolSnapshot:
    """All symbols of an index in memory (Arrow), with the columns ranking needs.

    Immutable: an update builds a new snapshot (appending is zero-copy; removing rows
    copies), so a search never sees half an update.
    """

    def __init__(self, table: pa.Table, derived: bool = False) -> None:
        # One chunk per column: compute kernels and `take` pay per chunk.
        self.table = table if derived else _with_derived(table.combine_chunks())

    @property
    def size(self) -> int:
        return int(self.table.num_rows)

    def replace(self, removed_paths: Collection[str], added: pa.Table) -> SymbolSnapshot:
        """A new snapshot without the rows of `removed_paths`, plus `added`."""
        table = self.table
        if removed_paths and table.num_rows:
            gone = pc.is_in(table.column("path"), value_set=pa.array(list(removed_paths)))
            rows = pc.indices_nonzero(gone)
            if len(rows) and rows[-1].as_py() - rows[0].as_py() + 1 == len(rows):
                # One file's rows sit together: cut them out without copying the rest.
                first, last = rows[0].as_py(), rows[-1].as_py()
                table = pa.concat_tables([table.slice(0, first), table.slice(last + 1)])
            elif len(rows):
                table = table.filter(pc.invert(gone))
        if added.num_rows:
            table = pa.concat_tables([table, _with_derived(added.select(schema_names(table)))])
        if table.num_rows and table.column(0).num_chunks > MAX_CHUNKS:
            table = table.combine_chunks()
        return SymbolSnapshot(table, derived=True)


def schema_names(table: pa.Table) -> list[str]:
    return [name for name in table.column_names if name not in DERIVED]


_ASCII_WORD_START = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z0-9]"  # after a separator
    r"|(?<=[a-z0-9])[A-Z]"  # camelCase
    r"|(?<=[A-Z])[A-Z](?=[a-z])"  # HTTPServer: the S
    r"|(?<=[^0-9])[0-9]"  # parse2
)


def _word_starts(name: str) -> list[int]:
    if name.isascii():
        starts = [m.start() for m in _ASCII_WORD_START.finditer(name)]
        return starts if starts and starts[0] == 0 else [0, *starts]
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
    wanted = query.lower()
    lowered = name.lower()
    starts = _word_starts(name)
    failed: set[tuple[int, int, bool]] = set()  # states known not to lead to a match

    def match(qi: int, ni: int, continuing: bool) -> bool:
        if qi == len(wanted):
            return True
        if (qi, ni, continuing) in failed:
            return False
        char = wanted[qi]
        if continuing and ni < len(lowered) and lowered[ni] == char and match(qi + 1, ni + 1, True):
            return True
        for start in starts:
            if start >= ni and lowered[start] == char and match(qi + 1, start + 1, True):
                return True
        failed.add((qi, ni, continuing))
        return False

    return match(0, 0, False)


def _subsequence_regex(query: str) -> str:
    """The query's characters in order, anything between (on lower-cased names)."""
    return ".*".join(re.escape(char) for char in query)


def _top(snapshot: SymbolSnapshot, rows: Any, case: Any, k: int) -> list[int]:
    """The k best of `rows`: a match in the query's case first, then short names, code
    before tests, types before functions before the rest, then in index order (files in
    path order)."""
    if len(rows) == 0 or k <= 0:
        return []
    table = snapshot.table
    ranking = pa.table(
        {
            "case_miss": pc.invert(pc.fill_null(case, False)),
            "length": pc.take(table.column("_length"), rows),
            "test": pc.take(table.column("_test"), rows),
            "kind": pc.take(table.column("_kind_rank"), rows),
            "row": rows,
        }
    )
    keys = [
        ("case_miss", "ascending"),
        ("length", "ascending"),
        ("test", "ascending"),
        ("kind", "ascending"),
        ("row", "ascending"),
    ]
    if len(rows) > k:
        ranking = ranking.take(pc.select_k_unstable(ranking, k=k, sort_keys=keys))
    ordered = ranking.take(pc.sort_indices(ranking, sort_keys=keys))
    best: list[int] = ordered.column("row").to_pylist()
    return best


def char_mask(text: str) -> int:
    """Which characters occur in `text`, as bits (letters, digits, "_", the rest hashed)."""
    mask = 0
    for char in set(text):
        code = ord(char)
        if 97 <= code <= 122:
            mask |= 1 << (code - 97)
        elif 48 <= code <= 57:
            mask |= 1 << (code - 22)
        elif code == 95:
            mask |= 1 << 36
        else:
            mask |= 1 << (37 + code % 27)
    return mask


def rank_symbols(
    snapshot: SymbolSnapshot, query: str, limit: int, kind: str | Collection[str] | None = None
) -> list[tuple[int, str]]:
    """(row, tier) of the best matches in `snapshot`.

    Every tier needs every character of the query, so a bit test on each name's character
    set picks the candidates first; the string tests then run on those only.
    """
    query = query.strip()
    if snapshot.size == 0 or limit <= 0:
        return []
    table = snapshot.table
    allowed: Any = None
    if kind:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        allowed = pc.is_in(table.column("kind"), value_set=pa.array(kinds))

    def rows_of(mask: Any) -> Any:
        if allowed is not None:
            mask = pc.and_(mask, allowed)
        return pc.indices_nonzero(pc.fill_null(mask, False))

    if not query:
        rows = rows_of(pc.is_valid(table.column("name")))
        return [(row, "all") for row in _top(snapshot, rows, pc.is_valid(rows), limit)]
    qualified = "." in query
    needle = query.lower()
    if qualified:
        candidates = rows_of(pc.is_valid(table.column("name")))
        lowered = pc.take(table.column("_qualified_lower"), candidates)
        original = pc.take(table.column("qualified_name"), candidates)
    else:
        wanted = pa.scalar(char_mask(needle), pa.uint64())
        chars = table.column("_chars")
        candidates = rows_of(pc.equal(pc.bit_wise_and(chars, wanted), wanted))
        lowered = pc.take(table.column("_name_lower"), candidates)
        original = pc.take(table.column("name"), candidates)
    contains = pc.match_substring(lowered, needle)
    exact = pc.equal(lowered, needle)
    prefix = pc.and_(pc.starts_with(lowered, needle), pc.invert(exact))
    inner = pc.and_(contains, pc.invert(pc.or_(exact, prefix)))
    results: list[tuple[int, str]] = []

    def add(mask: Any, case: Any, tier: str) -> None:
        rows = pc.filter(candidates, mask)
        best = _top(snapshot, rows, pc.filter(case, mask), limit - len(results))
        results.extend((row, tier) for row in best)

    add(exact, pc.equal(original, query), "exact")
    if len(results) < limit:
        add(prefix, pc.starts_with(original, query), "prefix")
    if len(results) < limit and not qualified and len(query) > 1 and " " not in query:
        # Fewer than `limit` exact and prefix matches exist here, so all of them are in
        # `results`. Hump matches may also contain the query ("getUserName" for "username").
        ranked = {row for row, _ in results}
        in_order = pc.match_substring_regex(lowered, _subsequence_regex(needle))
        rows = pc.filter(candidates, in_order)
        ordered = _top(snapshot, rows, pc.is_valid(rows), HUMP_CANDIDATES + len(ranked))
        ordered = [row for row in ordered if row not in ranked]
        names = pc.take(table.column("name"), pa.array(ordered, pa.int64())).to_pylist()
        matched = []
        for row, name in zip(ordered, names, strict=True):
            if humps_match(query, name):
                matched.append(row)
                if len(results) + len(matched) >= limit:
                    break  # the rest rank lower (longer names)
        results.extend((row, "humps") for row in matched)
        if matched:
            taken = pc.is_in(candidates, value_set=pa.array(matched, candidates.type))
            inner = pc.and_(inner, pc.invert(taken))
    if len(results) < limit:
        add(inner, pc.match_substring(original, query), "substring")
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


def search_similar(
    index: WorkspaceIndex,
    text: str,
    limit: int = 10,
    exclude_paths: Collection[str] = (),
) -> list[ChunkHit] | None:
    """Chunks nearest to `text` by embedding (cosine), or None without an embedding model."""
    embedder = index.config.embedder
    if embedder is None:
        return None
    if not text.strip() or limit <= 0:
        return []
    try:
        (vector,) = embedder.embed([text])
    except Exception as exc:
        log.warning("embedding a query failed: %s", exc)
        return []
    columns = ["path", "language", "start_line", "end_line", "symbols", "text", "_distance"]
    table = index.read_store(
        lambda store: store.search_vector(list(vector), limit, list(exclude_paths), columns),
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
            score=1.0 - float(record.get("_distance") or 0.0),
            symbols=list(record["symbols"] or []),
            language=record["language"],
        )
        for record in table.to_pylist()
    ]


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
