"""What a chat turn sends to the model: context items with their references, recalled past
turns, the conversation so far, the rules (LSP-free, pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ouzel.inference.types import ChatMessage
from ouzel.server.features.chat.rules import RuleFile, rules_prompt
from ouzel.server.features.chat.store import SearchHit, Turn

SYSTEM = (
    "You are ouzel, a coding assistant inside the user's editor. Answer concisely and "
    "precisely. The workspace context below shows code with its file and line numbers; "
    "when you use it, cite the place as path:line (for example `src/app.py:12`)."
)


@dataclass(frozen=True)
class ContextItem:
    source: str  # selection | open | index | definition
    uri: str
    path: str  # workspace-relative (or the file name outside the workspace)
    first_line: int  # 0-based
    last_line: int  # 0-based, inclusive
    text: str
    label: str = ""
    language: str = ""

    def reference(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "path": self.path,
            "line": self.first_line + 1,
            "endLine": self.last_line + 1,
            "source": self.source,
            "label": self.label,
        }

    def block(self) -> str:
        numbered = "\n".join(
            f"{self.first_line + 1 + k:>4} {line}" for k, line in enumerate(self.text.splitlines())
        )
        title = {
            "selection": "selected by the user",
            "open": "open in the editor",
            "index": "found by searching the workspace",
            "definition": "a definition the code uses",
        }.get(self.source, self.source)
        return (
            f"{self.path}:{self.first_line + 1}-{self.last_line + 1} ({title}):\n"
            f"```{self.language}\n{numbered}\n```"
        )


def fit_items(items: Sequence[ContextItem], max_chars: int) -> list[ContextItem]:
    """Items in order, each whole, while they fit in `max_chars`; duplicates dropped."""
    kept: list[ContextItem] = []
    seen: set[tuple[str, int, int]] = set()
    used = 0
    for item in items:
        key = (item.path, item.first_line, item.last_line)
        overlapping = any(
            p == item.path and f <= item.first_line and item.last_line <= last
            for p, f, last in seen
        )
        if key in seen or overlapping:
            continue
        cost = len(item.text) + 80
        if used + cost > max_chars:
            continue
        kept.append(item)
        seen.add(key)
        used += cost
    return kept


def build_messages(
    message: str,
    items: Sequence[ContextItem],
    rules: Sequence[RuleFile],
    history: Sequence[Turn],
    recalled: Sequence[SearchHit],
    recall_chars: int = 600,
) -> list[ChatMessage]:
    system = SYSTEM
    rules_text = rules_prompt(list(rules))
    if rules_text:
        system += "\n\n" + rules_text
    messages = [ChatMessage("system", system)]
    for turn in history:
        if turn.status not in ("done", "cancelled") or not turn.reply:
            continue
        messages.append(ChatMessage("user", turn.message))
        messages.append(ChatMessage("assistant", turn.reply))
    parts = []
    if recalled:
        notes = "\n\n".join(
            f"Q: {_cut(hit.message, recall_chars // 3)}\nA: {_cut(hit.reply, recall_chars)}"
            for hit in recalled
        )
        parts.append(f"Earlier exchanges in this workspace that may be relevant:\n\n{notes}")
    if items:
        parts.append("Workspace context:\n\n" + "\n\n".join(item.block() for item in items))
    parts.append(f"Question: {message}" if parts else message)
    messages.append(ChatMessage("user", "\n\n".join(parts)))
    return messages


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
