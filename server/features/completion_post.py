"""Where a suggestion may go and what of the model's text to keep.

`CursorContext` describes the cursor's surroundings; `decide_mode` says whether a single
line, a block, or nothing should be suggested there; `postprocess` turns raw model text
into the suggestion: cut at the end of the statement or block, without text that repeats
what follows the cursor or nearby lines, with the document's indentation. An empty result
means "no item", never an empty one.

Suggestions never contain "\r", whatever the model writes or the document uses: lines are
joined with "\n", which clients insert as the document's own line break (VS Code
normalises inserted text; Neovim splits it into buffer lines, where a "\r" would stay as a
visible ^M).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

Mode = Literal["single", "multi"]

CLOSERS = set(")]}>\"'`;:,.")
OPENERS = {"(": ")", "[": "]", "{": "}"}
BLOCK_OPENERS = (":", "{", "(", "[", "=>", "->", " do", " then")
NEARBY_LINES = 20  # how far up and down "repeats existing lines" looks


@dataclass(frozen=True)
class CursorContext:
    line_prefix: str  # the cursor's line before the cursor
    line_suffix: str  # the cursor's line after the cursor
    lines_before: tuple[str, ...]  # nearest last
    lines_after: tuple[str, ...]  # nearest first
    indent_unit: str  # "\t" or some spaces: how this document indents

    @staticmethod
    def at(text: str, starts: Sequence[int], offset: int) -> CursorContext:
        line = bisect.bisect_right(starts, offset) - 1
        lines_before = tuple(
            _line(text, starts, i) for i in range(max(0, line - NEARBY_LINES), line)
        )
        lines_after = tuple(
            _line(text, starts, i)
            for i in range(line + 1, min(len(starts), line + 1 + NEARBY_LINES))
        )
        current = _line(text, starts, line)
        column = offset - starts[line]
        return CursorContext(
            current[:column],
            current[column:],
            lines_before,
            lines_after,
            _indent_unit(lines_before + lines_after),
        )

    @property
    def base_indent(self) -> str:
        return _leading_space(self.line_prefix + self.line_suffix)

    def completed_line(self, first: str) -> str:
        return self.line_prefix + first + self.line_suffix


def _line(text: str, starts: Sequence[int], line: int) -> str:
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    return text[starts[line] : end].rstrip("\r\n")


def _leading_space(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _indent_unit(lines: Sequence[str]) -> str:
    """Tabs if the nearby lines indent with tabs, else 2 or 4 spaces (their common step)."""
    step = 0
    for line in lines:
        lead = _leading_space(line)
        if lead.startswith("\t"):
            return "\t"
        if lead and line.strip():
            step = math.gcd(step, len(lead))
    return "  " if step == 2 else "    "


def decide_mode(cursor: CursorContext, fim: bool, multiline: bool) -> Mode | None:
    """Single line, a block, or nothing, from where the cursor is.

    - Text after the cursor that is more than closing brackets and punctuation: a single
      line for fill-in-the-middle models; nothing for prefix-only models, which cannot see
      that text and would write over it.
    - An empty line (only indentation before the cursor) or the end of a line that opens
      a block: a block of lines.
    - Otherwise the rest of the line.
    """
    rest = cursor.line_suffix.strip()
    if rest and not all(ch in CLOSERS or ch.isspace() for ch in rest):
        return "single" if fim else None
    if not multiline:
        return "single"
    before = cursor.line_prefix.rstrip()
    if not before:
        return "multi"
    if not rest and before.endswith(BLOCK_OPENERS):
        return "multi"
    return "single"


def _width(whitespace: str, unit: str) -> int:
    """Columns of leading whitespace (a tab counts as one indent unit)."""
    return len(whitespace.replace("\t", " " * (4 if unit == "\t" else len(unit))))


def _block_minimum(cursor: CursorContext, first: str) -> int:
    """Lines of a block suggestion must be indented at least this much (in columns)."""
    unit = cursor.indent_unit
    if not cursor.line_prefix.strip():  # an empty line: the block starts at the cursor
        return _width(cursor.line_prefix + _leading_space(first), unit)
    return _width(cursor.base_indent, unit) + 1  # after a block opener: strictly deeper


def _block_end(lines: Sequence[str], cursor: CursorContext) -> int:
    """Index of the first line that no longer belongs to the suggested block.

    The block ends at a line indented less than the block, at two blank lines in a row,
    or, at the top level, at the first blank line after some code.
    """
    if not lines:
        return 0
    minimum = _block_minimum(cursor, lines[0])
    blank_run = 0
    has_code = bool(lines[0].strip())
    for index in range(1, len(lines)):
        line = lines[index]
        if not line.strip():
            blank_run += 1
            if blank_run >= 2 or (minimum == 0 and has_code):
                return index
            continue
        blank_run = 0
        if _width(_leading_space(line), cursor.indent_unit) < minimum:
            return index
        if line.strip() == _previous_code(lines, index):  # a small model looping
            return index
        has_code = True
    return len(lines)


def _previous_code(lines: Sequence[str], index: int) -> str | None:
    for line in reversed(lines[:index]):
        if line.strip():
            return line.strip()
    return None


def trim_excess_indent(text: str, cursor: CursorContext) -> str:
    """Model text for a cursor on a blank line, without indentation the line already has.

    The cursor's line already holds its indentation, and models trained on whole lines
    often write more of it ("    return i" after the cursor's 12 spaces: Qwen2.5-Coder
    0.5B did so on 3 of 40 HumanEval holes, an IndentationError once inserted). Where the
    cursor is indented, that indentation is the editor's (or the user's) choice and the
    model's extra spaces go, unless the line above opens a block and the cursor is still
    at its level (then one level deeper is the block's body). At column 0 the model may
    indent up to one level past the code above. The first line loses its excess, and the
    lines after it (whole lines, from column 0) lose as much, so the block keeps its shape.
    """
    if cursor.line_prefix.strip() or cursor.line_suffix.strip():
        return text
    first, sep, rest = text.partition("\n")
    own = _leading_space(first)
    if not own or not first.strip():
        return text
    above = next((line for line in reversed(cursor.lines_before) if line.strip()), None)
    unit = cursor.indent_unit
    above_width = _width(_leading_space(above), unit) if above is not None else 0
    opener = above is not None and above.rstrip().endswith(BLOCK_OPENERS)
    allowed = above_width + (_width(unit, unit) if opener else 0)
    cursor_width = _width(cursor.line_prefix, unit)
    wanted = cursor_width + _width(own, unit)
    if not cursor.line_prefix:
        keep = wanted <= allowed
    else:
        keep = opener and cursor_width == above_width and wanted == allowed
    if keep:
        return text
    lines = rest.split("\n") if sep else []
    shifted = [line[len(own) :] if line.startswith(own) else line for line in lines]
    return "\n".join([first[len(own) :], *shifted])


def block_ended(cursor: CursorContext, max_lines: int) -> Callable[[str], bool]:
    """For `CompletionRequest.should_stop`: True once the generated block is over."""

    def ended(text: str) -> bool:
        text = trim_excess_indent(_one_line_break(text), cursor)
        lines = _strip_leading_blank(text, cursor).split("\n")
        if not lines[-1].strip():
            lines.pop()  # its indentation may still grow; once it has code, it is known
        return len(lines) > max_lines or _block_end(lines, cursor) < len(lines)

    return ended


def _strip_leading_blank(text: str, cursor: CursorContext) -> str:
    """On an empty line, a block the model starts on the next line starts here instead."""
    if cursor.line_prefix.strip() or not text.startswith("\n"):
        return text
    body = text.lstrip("\n")
    lead = _leading_space(body)
    if lead.startswith(cursor.line_prefix):
        body = body[len(cursor.line_prefix) :]
    return body


def postprocess(
    text: str, cursor: CursorContext, mode: Mode, max_lines: int, truncated: bool = False
) -> str:
    """The suggestion to show for raw model `text` ("" means: show nothing).

    `truncated`: generation hit its token or time cap, so the last line may be cut short;
    a block then drops that line.
    """
    text = trim_excess_indent(_one_line_break(text), cursor)
    if cursor.line_prefix[-1:] in (" ", "\t") and cursor.line_prefix.strip():
        # After a space mid-line the model often starts with one more (the prompt's line
        # ends with a lone space token after the FIM middle marker): one is enough.
        text = text.lstrip(" \t")
    if mode == "single":
        lines = [_single_line(text.split("\n", 1)[0], cursor)]
    else:
        body = _strip_leading_blank(text, cursor)
        lines = _block(body, cursor, max_lines)
        if truncated and len(lines) > 1 and len(lines) == body.count("\n") + 1:
            lines.pop()  # the text's last line, where the cap cut it
        if len(lines) == 1:
            lines[0] = _single_line(lines[0], cursor)
    lines = _drop_following_duplicates(lines, cursor)
    while lines and not lines[-1].strip():
        lines.pop()
    if not "".join(lines).strip() or _only_repeats(lines, cursor):
        return ""
    return "\n".join(lines)


def _one_line_break(text: str) -> str:
    """Model text with "\r\n" and lone "\r" (LSP line breaks too) as "\n"."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _single_line(first: str, cursor: CursorContext) -> str:
    """The rest of the line, without what the line already has after the cursor."""
    first = first.rstrip()
    rest = cursor.line_suffix.strip()
    if not rest:
        return first
    if rest[0] in ")]}":
        first = _cut_at_unmatched_closer(first)  # brackets: balance decides where to stop
    elif rest in first:
        first = first[: first.index(rest)]  # quotes, punctuation: where they appear
    return first.rstrip()


def _cut_at_unmatched_closer(text: str) -> str:
    """Text up to the first closing bracket it did not open (the line already has it)."""
    stack: list[str] = []
    quote = ""
    for index, ch in enumerate(text):
        if quote:
            if ch == quote and text[index - 1 : index] != "\\":
                quote = ""
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in OPENERS:
            stack.append(OPENERS[ch])
        elif ch in ")]}":
            if not stack or stack[-1] != ch:
                return text[:index]
            stack.pop()
    return text


def _block(text: str, cursor: CursorContext, max_lines: int) -> list[str]:
    lines = [line.rstrip() for line in text.split("\n")]
    lines = lines[: min(_block_end(lines, cursor), max_lines)]
    return [lines[0], *(_reindent(line, cursor.indent_unit) for line in lines[1:])] if lines else []


def _reindent(line: str, unit: str) -> str:
    """Leading whitespace in the document's style (tabs or spaces)."""
    lead = _leading_space(line)
    if not lead:
        return line
    if unit == "\t":
        width = len(lead.replace("\t", "    "))
        return "\t" * (width // 4) + " " * (width % 4) + line[len(lead) :]
    return lead.replace("\t", unit) + line[len(lead) :]


def _drop_following_duplicates(lines: list[str], cursor: CursorContext) -> list[str]:
    """Cut where the suggestion starts repeating the next line of the document."""
    upcoming = next((line.strip() for line in cursor.lines_after if line.strip()), None)
    if upcoming is None:
        return lines
    for index, line in enumerate(lines):
        whole = cursor.completed_line(line) if index == 0 else line
        if whole.strip() == upcoming:
            return lines[:index]
    return lines


def _only_repeats(lines: Sequence[str], cursor: CursorContext) -> bool:
    """True when every line the suggestion completes already exists right around it:
    for n lines, within n lines above or below (a model copying its neighbours).

    Not further: code repeats lines a few lines apart all the time (HumanEval/1 has
    `current_string.append(c)` in both branches of an if; looking 3 lines away dropped
    the right answer there).
    """
    completed = [cursor.completed_line(lines[0]), *lines[1:]]
    meaningful = [line.strip() for line in completed if line.strip()]
    reach = max(1, len(meaningful))
    nearby = {line.strip() for line in cursor.lines_before[-reach:]}
    nearby |= {line.strip() for line in cursor.lines_after[:reach]}
    return all(line in nearby for line in meaningful)
