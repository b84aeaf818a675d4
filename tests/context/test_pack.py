"""Packing respects the budget exactly, counted with the embedded model's own tokenizer, in
every format, and renders the same set of parts the same way every time."""

from __future__ import annotations

import random
import sysconfig
from pathlib import Path

import pytest

from ouzel.inference.templates import TEMPLATES
from ouzel.server.features.context.model import Candidate, Source
from ouzel.server.features.context.pack import Block, Packer, comment_blocks, repo_blocks
from ouzel.server.features.context.service import template_renderer
from ouzel.server.features.context.snippets import split_lines
from ouzel.server.features.context.tokens import CharEstimateCounter, LlamaVocabCounter

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SOURCES: tuple[Source, ...] = ("definition", "bm25", "recent")


def _candidates(seed: int, count: int = 30) -> list[Candidate]:
    """Real code of varied shape: CRLF, tabs, emoji and CJK in some, from the stdlib."""
    rng = random.Random(seed)
    files = sorted(STDLIB.glob("*.py"))
    out: list[Candidate] = []
    for rank in range(count):
        path = rng.choice(files)
        lines = split_lines(path.read_text(encoding="utf-8"))
        start = rng.randrange(max(1, len(lines) - 40))
        text = "".join(lines[start : start + rng.randrange(1, 40)]) or "pass\n"
        if rank % 5 == 1:
            text = text.replace("\n", "\r\n")
        if rank % 7 == 2:
            text = "# 🎉 日本語のコメント\n\t" + text
        source = SOURCES[rank % 3]
        candidate = Candidate(source, path, start, start + text.count("\n"), text, rank // 3)
        candidate.score = 1.0 / (1 + rank)
        out.append(candidate)
    return out


def _renderers() -> dict[str, object]:
    return {
        "path comments": comment_blocks("#"),
        "file_sep": repo_blocks("<|file_sep|>"),
        "plain template": template_renderer(TEMPLATES["plain"], "#"),
        "qwen template": template_renderer(TEMPLATES["qwen"], "#"),
        "starcoder template": template_renderer(TEMPLATES["starcoder"], "//"),
    }


@pytest.mark.parametrize("format_name", list(_renderers()))
@pytest.mark.parametrize("budget", [0, 1, 12, 45, 128, 384, 1024, 3000])
def test_the_packed_block_never_exceeds_the_budget(
    counter: LlamaVocabCounter, format_name: str, budget: int
) -> None:
    render = _renderers()[format_name]
    packer = Packer(counter, render)  # type: ignore[arg-type]
    for seed in range(3):
        ranked = _candidates(seed)
        parts, total = packer.pack(ranked, budget, lambda path: path.name)
        blocks = [Block(p.display_path, p.text, p.source) for p in parts]
        exact = counter.count(packer.render(blocks)) - counter.count(packer.render([]))
        assert exact == total <= budget
        if packer.additive:  # then each part's count adds up to the block's, exactly
            assert sum(p.tokens for p in parts) == total
        if budget >= 1024 and len(parts) < len(ranked):
            assert budget - total < 400, "a big budget is mostly used"


def test_gemma_counts_add_up_across_part_boundaries(counter: LlamaVocabCounter) -> None:
    """Why the packer may sum parts: no gemma3 token holds a newline and then '#' or '<'."""
    assert counter.additive_after_newline("# path")
    assert counter.additive_after_newline("<|file_sep|>a.py")  # not even in this vocabulary
    packer = Packer(counter, comment_blocks("#"))
    assert packer.additive
    blocks = [Block(c.path.name, c.text, c.source) for c in _candidates(7, 20)]
    together = counter.count(packer.render(blocks))
    assert together == sum(packer.part_cost(block) for block in blocks)


def test_without_a_tokenizer_the_estimate_is_checked_on_the_whole_block() -> None:
    estimate = CharEstimateCounter()
    packer = Packer(estimate, comment_blocks("#"))
    assert not packer.additive
    parts, total = packer.pack(_candidates(3), 300, lambda path: path.name)
    blocks = [Block(p.display_path, p.text, p.source) for p in parts]
    assert estimate.count(packer.render(blocks)) == total <= 300


def test_order_is_stable_parts_first_and_independent_of_scores(counter: LlamaVocabCounter) -> None:
    packer = Packer(counter, comment_blocks("#"))
    ranked = _candidates(11, 12)
    parts, _ = packer.pack(ranked, 100_000, lambda path: path.name)
    order = [p.source for p in parts]
    assert order == sorted(order, key=["definition", "bm25", "recent"].index)
    reshuffled = list(reversed(ranked))
    again, _ = packer.pack(reshuffled, 100_000, lambda path: path.name)
    assert [(p.display_path, p.start_line, p.text) for p in again] == [
        (p.display_path, p.start_line, p.text) for p in parts
    ]


def test_a_part_too_big_is_cut_to_whole_lines_from_its_start(counter: LlamaVocabCounter) -> None:
    packer = Packer(counter, comment_blocks("#"))
    body = "".join(f"    value_{i} = compute({i}, 'x' * {i})\n" for i in range(200))
    text = "def big_function(a, b):\n" + body
    candidate = Candidate("definition", Path("/w/big.py"), 10, 211, text, 0)
    candidate.score = 1.0
    parts, total = packer.pack([candidate], 120, lambda path: path.name)
    (part,) = parts
    assert part.text.startswith("def big_function(a, b):\n") and part.text.endswith("\n")
    assert text.startswith(part.text)
    assert part.end_line == 10 + len(split_lines(part.text))
    assert 60 <= total <= 120
