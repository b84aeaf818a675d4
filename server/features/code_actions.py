"""AI code actions (LSP-free): which actions a range offers, the region each rewrites, and
the prompts.

The list is computed without a model and without parsing the file (a scan of the lines
above the cursor finds the enclosing definition's name), so `textDocument/codeAction`
answers in well under a millisecond. Running an action finds the exact region with the
index's tree-sitter outline (on a worker thread) and asks the model for the whole region
rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ouzel.inference.types import ChatMessage
from ouzel.server.features.edits import Region, region_for_lines, split_lines

ActionName = Literal["explain", "fix", "docstring", "tests", "edit"]
ACTIONS: tuple[ActionName, ...] = ("explain", "fix", "docstring", "tests", "edit")
EDITING_ACTIONS: frozenset[str] = frozenset({"fix", "docstring", "edit"})
KINDS: dict[str, str] = {
    "explain": "refactor.ouzel.explain",
    "fix": "quickfix.ouzel.fix",
    "docstring": "refactor.rewrite.ouzel.docstring",
    "tests": "refactor.ouzel.tests",
    "edit": "refactor.rewrite.ouzel.edit",
}
ADVERTISED_KINDS = ["quickfix", "refactor", "refactor.rewrite", "refactor.ouzel"]
MAX_FIX_ACTIONS = 3
MAX_INSTRUCTION_CHARS = 2000
_SCAN_LINES = 400  # how far up the list looks for the enclosing definition

_DEFINITION = re.compile(
    r"^(?P<indent>[ \t]*)(?:export\s+)?(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:static\s+)?"
    r"(?P<kind>def|class|function|fn|func|interface|struct|impl|trait)\s+"
    r"(?:\([^)]*\)\s*)?(?P<name>[A-Za-z_][\w$]*)"
)


@dataclass(frozen=True)
class Definition:
    name: str
    kind: str  # "function" or "class"
    first_line: int  # 0-based
    last_line: int  # 0-based, inclusive (exact after `refine`, a guess from the scan)


@dataclass(frozen=True)
class ActionOffer:
    action: ActionName
    kind: str
    title: str
    diagnostic_index: int | None = None  # fix: which of context.diagnostics


def definition_hint(text: str, line: int) -> Definition | None:
    """The definition enclosing `line`, by indentation (fast, approximate)."""
    lines = split_lines(text)
    if not lines:
        return None
    line = min(max(0, line), len(lines) - 1)
    here = lines[line]
    limit = _indent(here) if here.strip() else 10**6
    for number in range(line, max(-1, line - _SCAN_LINES), -1):
        candidate = lines[number]
        if not candidate.strip():
            continue
        match = _DEFINITION.match(candidate)
        indent = _indent(candidate)
        if match and (number == line or indent < limit):
            kind = (
                "class"
                if match["kind"] in ("class", "struct", "interface", "trait", "impl")
                else "function"
            )
            return Definition(match["name"], kind, number, _block_end(lines, number))
        if number != line:
            limit = min(limit, indent)
        if limit == 0 and not match:
            return None
    return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _block_end(lines: list[str], first: int) -> int:
    """Last line of the indented block that starts at `first` (braces are not counted)."""
    base = _indent(lines[first])
    last = first
    for number in range(first + 1, len(lines)):
        line = lines[number]
        if not line.strip():
            continue
        if _indent(line) <= base and not line.lstrip().startswith(("}", ")", "]")):
            break
        last = number
    return last


def offers(
    text: str,
    start_line: int,
    end_line: int,
    selection_empty: bool,
    diagnostics: Sequence[str],
    only: Sequence[str] | None = None,
) -> list[ActionOffer]:
    """The AI actions for a range; `diagnostics` are the messages of context.diagnostics."""
    found = definition_hint(text, start_line)
    result = [ActionOffer("explain", KINDS["explain"], "Ouzel: Explain this code")]
    for index, message in enumerate(diagnostics[:MAX_FIX_ACTIONS]):
        short = " ".join(message.split())
        short = short if len(short) <= 60 else short[:57] + "…"
        result.append(ActionOffer("fix", KINDS["fix"], f'Ouzel: Fix "{short}"', index))
    if found is not None:
        result.append(
            ActionOffer("docstring", KINDS["docstring"], f"Ouzel: Add a docstring to {found.name}")
        )
        if found.kind == "function":
            result.append(
                ActionOffer("tests", KINDS["tests"], f"Ouzel: Write tests for {found.name}")
            )
    if not selection_empty:
        result.append(
            ActionOffer("edit", KINDS["edit"], "Ouzel: Edit selection with an instruction…")
        )
    if only:
        result = [o for o in result if any(_kind_matches(o.kind, want) for want in only)]
    return result


def _kind_matches(kind: str, wanted: str) -> bool:
    return not wanted or kind == wanted or kind.startswith(wanted + ".")


# --- regions -------------------------------------------------------------------------------


def refine(definitions: Sequence[Definition], line: int) -> Definition | None:
    """The innermost of `definitions` (from the tree-sitter outline) containing `line`."""
    containing = [d for d in definitions if d.first_line <= line <= d.last_line]
    if not containing:
        return None
    return min(containing, key=lambda d: d.last_line - d.first_line)


def region_for(
    action: ActionName,
    text: str,
    start_line: int,
    end_line: int,
    selection_empty: bool,
    enclosing: Definition | None,
) -> Region:
    """The whole lines an action works on: the selection's lines, else the enclosing
    definition, else the line(s) of the range; `docstring` always takes the definition."""
    if action == "docstring" and enclosing is not None:
        return region_for_lines(text, enclosing.first_line, enclosing.last_line)
    if not selection_empty:
        return region_for_lines(text, start_line, end_line)
    if enclosing is not None:
        return region_for_lines(text, enclosing.first_line, enclosing.last_line)
    return region_for_lines(text, start_line, end_line)


def selection_lines(start: tuple[int, int], end: tuple[int, int]) -> tuple[int, int, bool]:
    """(first line, last line, empty) of a selection; a selection ending at character 0
    does not take that line."""
    (start_line, start_char), (end_line, end_char) = sorted([start, end])
    empty = (start_line, start_char) == (end_line, end_char)
    if not empty and end_char == 0 and end_line > start_line:
        end_line -= 1
    return start_line, end_line, empty


# --- prompts -------------------------------------------------------------------------------

_REWRITE_SYSTEM = (
    "You are ouzel, a careful coding assistant inside the user's editor. You rewrite one "
    "region of a file. Reply with the COMPLETE rewritten region in a single fenced code "
    "block and nothing else: every line of the region, changed or not, with the same "
    "indentation. Never write placeholders such as '... existing code ...' or '# ...'."
)
_ANSWER_SYSTEM = (
    "You are ouzel, a coding assistant inside the user's editor. Answer concisely and "
    "precisely; cite lines as path:line."
)


@dataclass(frozen=True)
class ActionInput:
    action: ActionName
    path: str  # as shown to the model (workspace-relative)
    language: str
    region_text: str
    first_line: int  # 0-based, for citations
    name: str = ""  # the enclosing definition
    instruction: str = ""
    diagnostic: str = ""


def messages_for(job: ActionInput) -> list[ChatMessage]:
    """The chat messages for an action."""
    fence = f"```{job.language}\n{job.region_text.rstrip()}\n```"
    count = len(split_lines(job.region_text)) or 1
    where = f"{job.path}, lines {job.first_line + 1}-{job.first_line + count}"
    if job.action == "explain":
        task = f"Explain what this code from {where} does, briefly.\n\n{fence}"
        return [ChatMessage("system", _ANSWER_SYSTEM), ChatMessage("user", task)]
    if job.action == "tests":
        task = (
            f"Write unit tests for `{job.name or 'this code'}` from {where}, in the usual test "
            f"framework for {job.language} (pytest for Python), in one fenced code block.\n\n{fence}"
        )
        return [ChatMessage("system", _ANSWER_SYSTEM), ChatMessage("user", task)]
    if job.action == "docstring":
        ask = (
            f"Add a concise docstring (documentation comment) to `{job.name or 'the definition'}`. "
            "Change nothing else."
        )
    elif job.action == "fix":
        ask = f"Fix this problem reported at this code: {job.diagnostic}. Change as little as possible."
    else:
        ask = f"Apply this instruction: {job.instruction}"
    task = f"{ask}\n\nThe region ({where}):\n{fence}\n\nReply with the whole rewritten region."
    return [ChatMessage("system", _REWRITE_SYSTEM), ChatMessage("user", task)]


def stop_reason_note(stop_reason: str | None) -> str | None:
    """Why an answer cannot be applied, from how the stream ended (None: it can)."""
    notes = {
        "length": "the model's answer hit the token limit before the region was complete",
        "time": "the model's answer hit the time cap before the region was complete",
        "repetition": "the model's answer started repeating itself",
        "error": "the model failed while answering",
    }
    return notes.get(stop_reason or "stop")
