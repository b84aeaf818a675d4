"""AI edits as minimal hunks of a region (LSP-free).

The model rewrites a whole region (whole lines of the document) and replies with the
region's new text. This module checks the reply (no elided code), diffs the old and new
lines with difflib into hunks, and places each hunk in the document as a line range, so
nothing outside the region can change and each hunk can be accepted on its own.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

# Placeholders a model writes instead of code it did not repeat. A reply containing one
# that the original region does not contain would delete that code if applied.
_ELISION_PATTERNS = [
    re.compile(r"\.\.\.\s*(existing|rest|remaining|unchanged|other|previous|same)\b", re.I),
    re.compile(
        r"\b(existing|rest of( the)?|remaining|unchanged) (code|function|file|body)\b", re.I
    ),
    re.compile(r"^\s*(#|//|--|;)\s*(\.\.\.|…)", re.M),  # "# ...", "// …"
    re.compile(r"/\*\s*(\.\.\.|…)\s*\*/"),  # "/* ... */"
    re.compile(r"<!--\s*(\.\.\.|…)\s*-->"),
    re.compile(r"^\s*(\.\.\.|…)\s*$", re.M),  # a line that is only "..." (Python's Ellipsis)
]
_FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})[^\n]*\n(.*?)^\1?\2[ \t]*$", re.M | re.S)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class EditRefused(Exception):
    """The model's reply cannot be applied safely; the message says why, for the user."""


@dataclass(frozen=True)
class Region:
    """Whole lines `first_line` … `end_line - 1` of a document (0-based, end exclusive)."""

    first_line: int
    end_line: int

    def __post_init__(self) -> None:
        if self.first_line < 0 or self.end_line < self.first_line:
            raise ValueError(f"bad region {self.first_line}..{self.end_line}")


@dataclass(frozen=True)
class Hunk:
    """Replace document lines `first_line` … `end_line - 1` with `new_text` (whole lines;
    first_line == end_line is an insertion before `first_line`)."""

    first_line: int
    end_line: int
    new_text: str

    @property
    def kind(self) -> str:
        if self.first_line == self.end_line:
            return "insert"
        return "delete" if not self.new_text else "replace"

    def label(self, index: int, count: int) -> str:
        """`Change 2 of 3: lines 9-10 (replace)`, with 1-based lines of the current text."""
        if self.kind == "insert":
            where = f"before line {self.first_line + 1}"
        elif self.end_line - self.first_line == 1:
            where = f"line {self.first_line + 1}"
        else:
            where = f"lines {self.first_line + 1}-{self.end_line}"
        return f"Change {index} of {count}: {where} ({self.kind})"


def split_lines(text: str) -> list[str]:
    """Lines with their line breaks kept (LSP breaks only: \\r\\n, \\r, \\n)."""
    lines: list[str] = []
    start = 0
    for match in _LINE_BREAK.finditer(text):
        lines.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        lines.append(text[start:])
    return lines


def dominant_eol(text: str) -> str:
    crlf = text.count("\r\n")
    lf = text.count("\n") - crlf
    cr = text.count("\r") - crlf
    if crlf >= lf and crlf >= cr and crlf:
        return "\r\n"
    return "\r" if cr > lf else "\n"


def extract_code(reply: str) -> str:
    """The code in a model's reply: the longest fenced block, else the whole reply."""
    blocks = [match.group(3) for match in _FENCE.finditer(reply)]
    if blocks:
        return max(blocks, key=len)
    if "```" in reply:  # an unterminated fence (the reply was cut off)
        raise EditRefused("the model's answer was cut off inside its code block")
    return reply.strip("\n") + "\n"


def elisions(original: str, reply: str) -> list[str]:
    """Elision markers in `reply` that `original` does not contain."""
    found = []
    for pattern in _ELISION_PATTERNS:
        for match in pattern.finditer(reply):
            marker = match.group(0).strip()
            if marker and marker not in original and not pattern.search(original):
                found.append(marker)
    return found


def check_reply(original: str, new_text: str) -> None:
    """Refuse a rewritten region that elides code (raises EditRefused)."""
    markers = elisions(original, new_text)
    if markers:
        shown = ", ".join(repr(m) for m in dict.fromkeys(markers))
        raise EditRefused(
            f"the model's answer leaves code out ({shown}) instead of rewriting the whole "
            "region; nothing was changed"
        )
    if original.strip() and not new_text.strip():
        raise EditRefused("the model's answer is empty; nothing was changed")


def region_text(text: str, region: Region) -> str:
    lines = split_lines(text)
    return "".join(lines[region.first_line : region.end_line])


def region_for_lines(text: str, first_line: int, last_line: int) -> Region:
    """The region of lines `first_line` … `last_line` (inclusive), clamped to the text."""
    count = max(1, len(split_lines(text)))
    first = min(max(0, first_line), count - 1)
    last = min(max(first, last_line), count - 1)
    return Region(first, last + 1)


def hunks_for(text: str, region: Region, new_region_text: str) -> list[Hunk]:
    """Minimal hunks turning `region` of `text` into `new_region_text`.

    The new text takes the document's line ends; its last line ends like the region's
    (with or without a break at the end of the document). Lines are compared without their
    line ends, so a model writing \\n into a \\r\\n file changes nothing by that alone.
    """
    eol = dominant_eol(text)
    old_lines = split_lines(text)[region.first_line : region.end_line]
    new_lines = [line.rstrip("\r\n") + eol for line in split_lines(new_region_text)]
    region_ends_open = bool(old_lines) and not old_lines[-1].endswith(("\n", "\r"))
    if new_lines and region_ends_open:
        new_lines[-1] = new_lines[-1].rstrip("\r\n")
    old_keys = [line.rstrip("\r\n") for line in old_lines]
    new_keys = [line.rstrip("\r\n") for line in new_lines]
    matcher = difflib.SequenceMatcher(a=old_keys, b=new_keys, autojunk=False)
    hunks = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        replacement = "".join(new_lines[j1:j2])
        if region_ends_open and i2 == len(old_lines):
            # The hunk reaches the end of a document without a final line break.
            if i1 == i2:  # appended after that last line: break it first
                replacement = eol + replacement
            replacement = (
                replacement.removesuffix(eol) if replacement.endswith(eol) else replacement
            )
        hunks.append(Hunk(region.first_line + i1, region.first_line + i2, replacement))
    return hunks


def apply_hunks(text: str, hunks: list[Hunk]) -> str:
    """`text` with `hunks` applied (for tests and previews; hunks in document order)."""
    lines = split_lines(text)
    for hunk in sorted(hunks, key=lambda h: h.first_line, reverse=True):
        lines[hunk.first_line : hunk.end_line] = [hunk.new_text] if hunk.new_text else []
    return "".join(lines)
