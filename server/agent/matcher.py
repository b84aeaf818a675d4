"""Find the model's "old text" in a file: exact first, then with whitespace normalised.

A match must be unique; several are refused with their line numbers so the model can add
context. A failed match is answered with the closest real lines of the file (aider's "did
you mean"), so the next attempt can copy them. New text with elision markers
(`... existing code ...`) that the old text did not have is refused: it would delete code.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

ELISION = re.compile(
    r"(\.\.\.|…)\s*(\(?\s*)(existing|rest of|remaining|unchanged)\b"
    r"|\b(rest of (the )?(code|file|function|class)|existing code)\s*(\.\.\.|…)",
    re.IGNORECASE,
)
CLOSEST_MIN_RATIO = 0.5
CLOSEST_CANDIDATES = 8


@dataclass(frozen=True)
class Match:
    start: int  # character offsets in the file's text
    end: int
    strategy: str  # "exact" | "whitespace"
    replacement: str  # the new text, re-indented when the match was by whitespace


@dataclass(frozen=True)
class NoMatch:
    reason: str  # for the model: what went wrong and what to do


def _norm(line: str) -> str:
    return " ".join(line.split())


def _line_number(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _trim_blank_edges(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def find_match(content: str, old: str, new: str) -> Match | NoMatch:
    """Where `old` is in `content`, or why it cannot be used."""
    if not old.strip():
        return NoMatch(
            "old_text is empty: quote the exact lines to replace (use create_file for a new file)"
        )
    if old == new:
        return NoMatch("old_text and new_text are the same: nothing would change")
    marker = ELISION.search(new)
    if marker and not ELISION.search(old):
        return NoMatch(
            f"new_text contains the elision marker {marker.group(0)!r}: that would delete the "
            "code it stands for. Write out the full replacement text."
        )
    exact = _exact(content, old, new)
    if exact is not None:
        return exact
    loose = _whitespace(content, old, new)
    if loose is not None:
        return loose
    return NoMatch(_did_you_mean(content, old, new))


def _exact(content: str, old: str, new: str) -> Match | NoMatch | None:
    count = content.count(old)
    if old.endswith("\n") and new and not new.endswith("\n"):
        new += "\n"  # models drop the last newline of new_text; the line keeps its end
    if count == 1:
        start = content.index(old)
        return Match(start, start + len(old), "exact", new)
    if count > 1:
        lines, position = [], -1
        for _ in range(min(count, 10)):
            position = content.index(old, position + 1)
            lines.append(str(_line_number(content, position)))
        return NoMatch(
            f"old_text occurs {count} times (at lines {', '.join(lines)}); include more "
            "surrounding lines so it matches exactly once"
        )
    return None


def _whitespace(content: str, old: str, new: str) -> Match | NoMatch | None:
    """Match line by line with runs of whitespace collapsed and edges stripped."""
    wanted = _trim_blank_edges(old.splitlines())
    if not wanted:
        return None
    wanted_norm = [_norm(line) for line in wanted]
    lines = content.splitlines(keepends=True)
    found = []
    for start in range(len(lines) - len(wanted) + 1):
        if all(_norm(lines[start + i]) == wanted_norm[i] for i in range(len(wanted))):
            found.append(start)
            if len(found) > 10:
                break
    if not found:
        return None
    if len(found) > 1:
        where = ", ".join(str(n + 1) for n in found[:10])
        return NoMatch(
            f"old_text matches {len(found)} places when whitespace is ignored (lines {where}); "
            "include more surrounding lines so it matches exactly once"
        )
    first = found[0]
    start = sum(len(line) for line in lines[:first])
    region = lines[first : first + len(wanted)]
    end = start + sum(len(line) for line in region)
    # Keep the file's own line ending on the last line unless the old text had one.
    last = region[-1]
    ending = last[len(last.rstrip("\r\n")) :]
    end -= len(ending)
    replacement = _reindent(new, wanted, [line.rstrip("\r\n") for line in region])
    return Match(start, end, "whitespace", replacement)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _reindent(new: str, wanted: list[str], real: list[str]) -> str:
    """Shift `new` by the indentation the model got wrong, when it got it wrong uniformly."""
    pairs = [(w, r) for w, r in zip(wanted, real, strict=True) if w.strip()]
    new_lines = _trim_blank_edges(new.splitlines())
    if not pairs:
        return "\n".join(new_lines)
    model_indent, real_indent = _indent(pairs[0][0]), _indent(pairs[0][1])
    uniform = all(
        _indent(r) == real_indent + _indent(w)[len(model_indent) :]
        and _indent(w).startswith(model_indent)
        for w, r in pairs
    )
    if not uniform or model_indent == real_indent:
        return "\n".join(new_lines)
    shifted = []
    for line in new_lines:
        if line.strip() and line.startswith(model_indent):
            shifted.append(real_indent + line[len(model_indent) :])
        else:
            shifted.append(line)
    return "\n".join(shifted)


def _did_you_mean(content: str, old: str, new: str) -> str:
    if new.strip() and new in content:
        return (
            "old_text was not found, and new_text is already in the file: this edit is done; "
            "go on with the rest of the task"
        )
    wanted = _trim_blank_edges(old.splitlines())
    lines = content.splitlines()
    best = closest_lines(lines, wanted)
    if best is None:
        return (
            "old_text was not found in the file, and no lines are close to it; read the file "
            "again and quote the lines exactly"
        )
    first, last = best
    excerpt = "\n".join(lines[first : last + 1])
    return (
        f"old_text was not found in the file. Did you mean these actual lines "
        f"({first + 1}-{last + 1})? Quote them exactly in old_text:\n{excerpt}"
    )


def closest_lines(lines: list[str], wanted: list[str]) -> tuple[int, int] | None:
    """The window of `lines` most like `wanted` (0-based, inclusive), if any is close."""
    if not wanted or not lines:
        return None
    size = min(len(wanted), len(lines))
    target = "\n".join(_norm(line) for line in wanted)
    normed = [_norm(line) for line in lines]
    scored = []
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(target)
    for start in range(len(lines) - size + 1):
        matcher.set_seq1("\n".join(normed[start : start + size]))
        scored.append((matcher.quick_ratio(), start))
    scored.sort(reverse=True)
    best_ratio, best_start = 0.0, -1
    for _, start in scored[:CLOSEST_CANDIDATES]:
        matcher.set_seq1("\n".join(normed[start : start + size]))
        ratio = matcher.ratio()
        if ratio > best_ratio:
            best_ratio, best_start = ratio, start
    if best_ratio < CLOSEST_MIN_RATIO:
        return None
    return best_start, best_start + size - 1


def apply_match(content: str, match: Match) -> str:
    return content[: match.start] + match.replacement + content[match.end :]


@dataclass(frozen=True)
class Hunk:
    """One contiguous change, in lines of the old text (0-based, end exclusive)."""

    index: int
    old_start: int
    old_end: int
    old_lines: tuple[str, ...]  # with line endings
    new_lines: tuple[str, ...]


def hunks(old: str, new: str) -> list[Hunk]:
    a = old.splitlines(keepends=True)
    b = new.splitlines(keepends=True)
    result: list[Hunk] = []
    opcodes = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in opcodes:
        if tag != "equal":
            result.append(Hunk(len(result), i1, i2, tuple(a[i1:i2]), tuple(b[j1:j2])))
    return result


def apply_hunks(old: str, changes: list[Hunk], accepted: list[bool]) -> str:
    """`old` with only the accepted hunks applied."""
    a = old.splitlines(keepends=True)
    out: list[str] = []
    position = 0
    for hunk, take in zip(changes, accepted, strict=True):
        out.extend(a[position : hunk.old_start])
        out.extend(hunk.new_lines if take else hunk.old_lines)
        position = hunk.old_end
    out.extend(a[position:])
    return "".join(out)
