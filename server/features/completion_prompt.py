"""The completion prompt for a cursor in a document: window, template, stops, mode.

`build_prompt` is pure (text in, prompt out), so the context engine (`ouzel/context`) and
the latency benchmark produce exactly the prompt the completion pipeline sends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ouzel.inference.templates import (
    ContextSnippet,
    PromptTemplate,
    Window,
    fit_window,
    line_comment,
)
from ouzel.inference.types import CompletionRequest
from ouzel.server.features.completion_post import CursorContext, Mode, block_ended, decide_mode
from ouzel.server.settings import CompletionSettings


@dataclass(frozen=True)
class PromptPlan:
    """Everything about one completion prompt; `request` is what the backend gets."""

    request: CompletionRequest
    template: str  # family name
    mode: Mode
    cursor: CursorContext
    window: Window
    snippets: tuple[ContextSnippet, ...]
    snippet_tokens: int


def build_prompt(
    text: str,
    starts: Sequence[int],
    offset: int,
    *,
    path: str,
    language_id: str,
    template: PromptTemplate,
    count_tokens: Callable[[str], int],
    settings: CompletionSettings,
    snippets: Sequence[ContextSnippet] = (),
    snippet_budget: int = 0,
) -> PromptPlan | None:
    """The prompt for a suggestion at `offset`, or None where none should be made.

    Budget: `settings.prompt_tokens` in all. Repository snippets take up to
    `snippet_budget` first (in the order given: put the most useful first); the file
    header next; the rest is split between the text before the cursor and, for
    fill-in-the-middle models, the text after it (`settings.suffix_share`).
    """
    cursor = CursorContext.at(text, starts, offset)
    mode = decide_mode(cursor, template.is_fim, settings.multiline)
    if mode is None:
        return None
    comment = line_comment(language_id, path)
    kept, snippet_tokens = _fit_snippets(snippets, snippet_budget, count_tokens, template, comment)
    header_tokens = count_tokens(template.render("", "", path, (), comment))
    in_file = max(32, settings.prompt_tokens - snippet_tokens - header_tokens)
    suffix_budget = int(in_file * settings.suffix_share) if template.is_fim else 0
    window = fit_window(text, starts, offset, in_file - suffix_budget, suffix_budget, count_tokens)
    # Stable parts first: snippets, the header, the text before the cursor; then the
    # text after it (see PromptTemplate.render for why the cursor's line ends the prefix).
    prompt = template.render(window.prefix, window.suffix, path, kept, comment)
    stop = template.stop + (("\n",) if mode == "single" else ())
    request = CompletionRequest(
        prompt=prompt,
        max_tokens=settings.max_tokens,
        stop=stop,
        temperature=settings.temperature,
        max_time_s=settings.max_time_ms / 1000,
        special_tokens=template.is_fim,
        should_stop=block_ended(cursor, settings.max_lines) if mode == "multi" else None,
    )
    return PromptPlan(request, template.family, mode, cursor, window, kept, snippet_tokens)


def _fit_snippets(
    snippets: Sequence[ContextSnippet],
    budget: int,
    count_tokens: Callable[[str], int],
    template: PromptTemplate,
    comment: str,
) -> tuple[tuple[ContextSnippet, ...], int]:
    """The snippets, in the order given, that fit `budget` as the template renders them
    (headers and separators included), and the tokens they add to the prompt."""

    def cost(chosen: Sequence[ContextSnippet]) -> int:
        return count_tokens(template.render("", "", "", chosen, comment)) - empty

    empty = count_tokens(template.render("", "", "", (), comment))
    kept: list[ContextSnippet] = []
    used = 0
    for snippet in snippets:
        alone = cost([snippet])
        if used + alone > budget:
            continue
        kept.append(snippet)
        used += alone
    total = cost(kept)
    while kept and total > budget:  # tokens merged across a boundary: drop the last
        kept.pop()
        total = cost(kept)
    return tuple(kept), total
