"""Packing ranked candidates into an exact token budget, in a cache-friendly order.

A part costs what the prompt grows by when it is added: its text plus the path header and
separators of the model family's format. Tokenizing is not free (gemma3's 262k vocabulary
runs at about 100k tokens/s here), so:

- when no token of the vocabulary can span the boundary between two parts (a part ends
  with a newline; the tokenizer has no token with a newline followed by the part's first
  character, or the part starts with a control token), a block's count is exactly the sum
  of its parts' counts, and each part's count is cached across requests (and computed
  ahead, in the background, for definitions);
- otherwise candidates are chosen on estimates that err high, the chosen block is
  tokenized once, the weakest part goes while it is over budget, and one more pass may add
  parts on exact counts.

Either way the result never exceeds the budget in the model's own tokens.

Order: llama.cpp reuses the KV cache of the longest prompt prefix that did not change, so
the parts that change least go first (definitions, then search hits, then recent code),
each group sorted by path and line rather than by score: the same set of parts always
renders the same text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ouzel.server.features.context.model import Candidate, ContextPart, Source
from ouzel.server.features.context.rank import same_region
from ouzel.server.features.context.snippets import split_lines
from ouzel.server.features.context.tokens import TokenCounter

STABILITY: dict[Source, int] = {"definition": 0, "vector": 1, "bm25": 2, "recent": 3}
MIN_TRUNCATED_TOKENS = 40  # below this a cut-down part is not worth its header
MIN_PART_TOKENS = 12  # less room than this: the budget is full
MAX_TRUNCATIONS = 2  # parts cut to fit per request
MAX_REFILL_COUNTS = 6  # parts tokenized alone in that pass


@dataclass(frozen=True)
class Block:
    """What a renderer needs of one part."""

    path: str
    text: str
    source: str


Renderer = Callable[[Sequence[Block]], str]


def comment_blocks(comment: str = "#") -> Renderer:
    """Path-comment blocks: `# path` and the code, for models without a repository format."""

    def render(blocks: Sequence[Block]) -> str:
        return "".join(f"{comment} {b.path}\n{_with_newline(b.text)}\n" for b in blocks)

    return render


def repo_blocks(file_sep: str) -> Renderer:
    """Repository-level prompts (Qwen2.5-Coder `<|file_sep|>`, StarCoder2 `<file_sep>`)."""

    def render(blocks: Sequence[Block]) -> str:
        return "".join(f"{file_sep}{b.path}\n{_with_newline(b.text)}" for b in blocks)

    return render


def _with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


@dataclass
class _Chosen:
    candidate: Candidate
    block: Block
    end_line: int


class Packer:
    def __init__(self, counter: TokenCounter, render: Renderer) -> None:
        self.counter = counter
        self.render = render
        self._empty = counter.count(render([]))
        # When parts render one after another and no token can span the boundary between
        # two, a block costs exactly the sum of its parts' costs (each cached).
        first, second = Block("a.py", "x = 1\n", "definition"), Block("b.py", "y\n", "bm25")
        self.additive = _renders_in_sequence(render, first, second) and (
            counter.additive_after_newline(render([second])[: -len(render([])) or None])
        )

    def part_cost(self, block: Block) -> int:
        """Exact tokens one part adds to a prompt (cached per text by the counter)."""
        return self.counter.count(self.render([block])) - self._empty

    def cost(self, blocks: Sequence[Block]) -> int:
        """Exact tokens these blocks add to a prompt."""
        if self.additive:
            return sum(self.part_cost(block) for block in blocks)
        return self.counter.count(self.render(blocks)) - self._empty

    def estimate(self, block: Block) -> int:
        """Errs high; exact when the part's count is cached."""
        return max(1, self.counter.estimate(self.render([block])) - self._empty)

    def pack(
        self,
        ranked: Sequence[Candidate],
        budget: int,
        display: Callable[[Path], str],
        exact_parts: bool = False,
        first: Sequence[Candidate] = (),
        first_share: float = 0.0,
    ) -> tuple[list[ContextPart], int]:
        """The best candidates that fit `budget` tokens, in prompt order, and their exact cost.

        `first` (in its own order) fills up to `first_share` of the budget before `ranked`
        competes for the rest; a `ranked` candidate showing the same lines as one already
        chosen is skipped. `exact_parts`: count each part alone with the tokenizer even
        when the block was counted as a whole (for the inspector).
        """
        if budget <= 0:
            return [], 0
        chosen, _, used = self._choose(first, int(budget * first_share), display)
        if chosen:
            ranked = [c for c in ranked if not any(same_region(c, i.candidate) for i in chosen)]
        more, rest, _ = self._choose(ranked, budget - used, display)
        chosen += more
        total = self._settle(chosen, budget)
        if not self.additive and budget - total >= MIN_TRUNCATED_TOKENS:
            chosen += self._refill(rest, budget - total, display)
            total = self._settle(chosen, budget)
        chosen.sort(key=_order_key)
        return [self._part(item, exact_parts or self.additive) for item in chosen], total

    def _size(self, block: Block, remaining: int) -> int:
        """Exact tokens when counting is cheap or decisive, else the (high) estimate."""
        estimate = self.estimate(block)
        if not self.additive or estimate > remaining * 1.5:
            return estimate
        return self.part_cost(block)

    def _choose(
        self, ranked: Sequence[Candidate], budget: int, display: Callable[[Path], str]
    ) -> tuple[list[_Chosen], list[Candidate], int]:
        """Greedy fill in ranked order: (chosen, left out, tokens used)."""
        chosen: list[_Chosen] = []
        rest: list[Candidate] = []
        used = 0
        truncations = 0
        for candidate in ranked:
            remaining = budget - used
            if remaining < MIN_PART_TOKENS:
                rest.append(candidate)
                continue
            block = Block(display(candidate.path), candidate.text, candidate.source)
            tokens = self._size(block, remaining)
            end_line = candidate.end_line
            if tokens > remaining:
                cut = self._truncate(block, remaining) if truncations < MAX_TRUNCATIONS else None
                if cut is None:
                    rest.append(candidate)
                    continue
                truncations += 1
                block, tokens = cut
                end_line = candidate.start_line + len(split_lines(block.text))
            chosen.append(_Chosen(candidate, block, end_line))
            used += tokens
        return chosen, rest, used

    def _settle(self, chosen: list[_Chosen], budget: int) -> int:
        """Count the chosen block exactly; drop the weakest parts while it is over budget."""
        chosen.sort(key=_order_key)
        total = self.cost([item.block for item in chosen])
        while chosen and total > budget:
            chosen.remove(min(chosen, key=lambda item: item.candidate.score))
            total = self.cost([item.block for item in chosen])
        return total

    def _refill(
        self, rest: Sequence[Candidate], room: int, display: Callable[[Path], str]
    ) -> list[_Chosen]:
        """Estimates erred high and left room: add whole parts on exact counts."""
        added: list[_Chosen] = []
        counts = 0
        for candidate in rest:
            if room < MIN_PART_TOKENS or counts >= MAX_REFILL_COUNTS:
                break
            block = Block(display(candidate.path), candidate.text, candidate.source)
            if self.estimate(block) > 2 * room:  # hopeless, do not tokenize it
                continue
            counts += 1
            tokens = self.part_cost(block)
            if tokens <= room:
                added.append(_Chosen(candidate, block, candidate.end_line))
                room -= tokens
        return added

    def _truncate(self, block: Block, budget: int) -> tuple[Block, int] | None:
        """The first whole lines of `block` that fit `budget`, if that is worth it."""
        if budget < MIN_TRUNCATED_TOKENS:
            return None
        lines = split_lines(block.text)
        keep = len(lines)
        while keep > 0:
            trial = Block(block.path, "".join(lines[:keep]), block.source)
            estimate = self.estimate(trial)
            if estimate > budget:  # shrink in proportion, then check
                keep = min(keep - 1, int(keep * budget / estimate))
                continue
            tokens = self.part_cost(trial) if self.additive else estimate
            if tokens <= budget:
                if tokens < MIN_TRUNCATED_TOKENS // 2:
                    return None
                return trial, tokens
            keep -= 1
        return None

    def _part(self, item: _Chosen, exact: bool) -> ContextPart:
        block = item.block
        if exact:
            tokens = self.part_cost(block)
        else:
            known = self.counter.cached(self.render([block]))
            tokens = known - self._empty if known is not None else self.estimate(block)
        candidate = item.candidate
        return ContextPart(
            source=candidate.source,
            path=candidate.path,
            display_path=block.path,
            start_line=candidate.start_line,
            end_line=item.end_line,
            score=round(candidate.score, 4),
            tokens=tokens,
            text=block.text,
            label=candidate.label,
            also_from=tuple(candidate.also_from),
        )


def _renders_in_sequence(render: Renderer, first: Block, second: Block) -> bool:
    """True when render([a, b]) is a's text, then b's, then what render([]) adds once."""
    tail = render([])
    one, two, both = render([first]), render([second]), render([first, second])
    if not (one.endswith(tail) and two.endswith(tail) and one != tail):
        return False
    cut = len(tail)
    return both == one[: len(one) - cut] + two[: len(two) - cut] + tail


def _order_key(item: _Chosen) -> tuple[int, str, int]:
    return (STABILITY.get(item.candidate.source, 9), item.block.path, item.candidate.start_line)
