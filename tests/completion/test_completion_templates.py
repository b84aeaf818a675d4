"""FIM templates: detection from GGUF metadata, rendering, and the token window."""

from __future__ import annotations

import pytest

from ouzel.inference.templates import (
    TEMPLATES,
    ContextSnippet,
    detect_template,
    fit_window,
    line_comment,
)
from ouzel.server.convert import line_starts

# Metadata as llama-cpp-python reports it (strings), trimmed to what detection reads.
QWEN = {
    "general.architecture": "qwen2",
    "general.name": "Qwen2.5 Coder 1.5B Instruct",
    "tokenizer.ggml.fim_pre_token_id": "151659",
}
STARCODER2 = {"general.architecture": "starcoder2", "general.name": "starcoder2-3b"}
DEEPSEEK = {"general.architecture": "llama", "general.name": "deepseek-ai_deepseek-coder-1.3b-base"}
CODELLAMA = {"general.architecture": "llama", "general.name": "codellama_codellama-7b-hf"}
CODESTRAL = {"general.architecture": "llama", "general.name": "Codestral-22B-v0.1"}
GEMMA3 = {"general.architecture": "gemma3", "general.name": "Gemma 3 270m"}


@pytest.mark.parametrize(
    ("metadata", "family"),
    [
        (QWEN, "qwen"),
        (STARCODER2, "starcoder"),
        (DEEPSEEK, "deepseek"),
        (CODELLAMA, "codellama"),
        (CODESTRAL, "codestral"),
        (GEMMA3, "plain"),
        ({}, "plain"),
        # A Qwen2.5 chat model (not Coder, no FIM ids) gets no FIM template.
        ({"general.architecture": "qwen2", "general.name": "Qwen2.5 7B Instruct"}, "plain"),
    ],
)
def test_family_from_architecture_and_name(metadata: dict[str, str], family: str) -> None:
    assert detect_template(metadata).family == family


@pytest.mark.parametrize(
    ("pre", "family"),
    [
        ("<|fim_prefix|>", "qwen"),
        ("<fim_prefix>", "starcoder"),
        ("<｜fim▁begin｜>", "deepseek"),
        ("▁<PRE>", "codellama"),
        ("[PREFIX]", "codestral"),
    ],
)
def test_family_from_fim_token_text_beats_the_name(pre: str, family: str) -> None:
    # The FIM tokens llama.cpp found are the strongest evidence, whatever the name says.
    template = detect_template({"general.name": "my finetune"}, {"pre": pre})
    assert template.family == family


def test_fim_token_texts_of_the_vocabulary_are_used() -> None:
    # CodeGemma names its tokens like Qwen; the template uses the vocabulary's texts.
    fim = {"pre": "<|fim_prefix|>", "suf": "<|fim_suffix|>", "mid": "<|fim_middle|>"}
    template = detect_template({"general.architecture": "gemma"}, fim)
    assert (template.fim_prefix, template.fim_suffix, template.fim_middle) == (
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
    )


def test_override_wins_and_auto_detects() -> None:
    assert detect_template(GEMMA3, override="starcoder").family == "starcoder"
    assert detect_template(QWEN, override="auto").family == "qwen"


def test_qwen_renders_repository_files_then_the_fim_prompt() -> None:
    snippet = ContextSnippet("lib/util.py", "def helper():\n    return 1", "definition")
    prompt = TEMPLATES["qwen"].render("x = hel", "\nprint(x)\n", "app/main.py", [snippet])
    assert prompt == (
        "<|file_sep|>lib/util.py\ndef helper():\n    return 1\n"
        "<|file_sep|>app/main.py\n<|fim_prefix|>x = hel<|fim_suffix|>\nprint(x)\n<|fim_middle|>"
    )


def test_qwen_without_repository_files_gets_the_plain_fim_prompt() -> None:
    # The raw model's own format; a <|file_sep|>path header before a lone file cost
    # exact match on HumanEval infilling (issue 14).
    prompt = TEMPLATES["qwen"].render("x = hel", "\nprint(x)\n", "app/main.py")
    assert prompt == "<|fim_prefix|>x = hel<|fim_suffix|>\nprint(x)\n<|fim_middle|>"


def test_starcoder_deepseek_codellama_codestral_formats() -> None:
    assert (
        TEMPLATES["starcoder"].render("a", "b", "f.py")
        == "<fim_prefix>f.py\na<fim_suffix>b<fim_middle>"
    )
    assert TEMPLATES["deepseek"].render("a", "b", "f.py") == (
        "<｜fim▁begin｜># Path: f.py\na<｜fim▁hole｜>b<｜fim▁end｜>"
    )
    assert TEMPLATES["codellama"].render("a", "b", "f.c", comment="//") == (
        "<PRE> // Path: f.c\na <SUF>b <MID>"
    )
    # Codestral is suffix-first (SPM).
    assert TEMPLATES["codestral"].render("a", "b", "f.py") == "[SUFFIX]b[PREFIX]# Path: f.py\na"


def test_plain_prompt_is_commented_context_then_the_prefix() -> None:
    snippet = ContextSnippet("util.go", "func Helper() int {\n\treturn 1\n}", "search")
    prompt = TEMPLATES["plain"].render("package main\n", "ignored", "main.go", [snippet], "//")
    assert prompt == (
        "// Context from util.go (search):\n// func Helper() int {\n// \treturn 1\n// }\n"
        "// Path: main.go\npackage main\n"
    )
    assert "ignored" not in prompt


def test_control_token_text_in_user_code_stays_text() -> None:
    template = TEMPLATES["qwen"]
    prompt = template.render('s = "<|fim_middle|>"', "", "f.py")
    assert prompt.count("<|fim_middle|>") == 1  # only the template's own
    assert prompt.endswith("<|fim_middle|>")


def test_line_comment_by_language_and_extension() -> None:
    assert line_comment("python") == "#"
    assert line_comment("typescript") == "//"
    assert line_comment("plaintext", "x.rs") == "//"
    assert line_comment("lua") == "--"
    assert line_comment("unknown", "file") == "#"


def count(text: str) -> int:
    """A deterministic stand-in tokenizer: one token per 4 characters, rounded up."""
    return -(-len(text) // 4)


def numbered(lines: int) -> str:
    return "".join(f"line_{i:04d} = {i}\n" for i in range(lines))  # 17 chars = 5 tokens


def test_window_fits_the_budgets_and_keeps_whole_lines() -> None:
    text = numbered(200)
    starts = line_starts(text)
    offset = starts[100] + 4  # inside line 100
    window = fit_window(text, starts, offset, 100, 40, count)
    assert window.prefix_tokens <= 100 and window.suffix_tokens <= 40
    assert window.prefix.endswith("line")
    assert window.prefix.startswith("line_") and text[:offset].endswith(window.prefix)
    assert text[offset:].startswith(window.suffix) and window.suffix.endswith("\n")
    assert window.first_line % 16 == 0  # aligned


def test_window_start_stays_put_while_typing_nearby() -> None:
    text = numbered(300)
    starts = line_starts(text)
    firsts = set()
    for line in range(150, 158):
        window = fit_window(text, starts, starts[line] + 3, 200, 0, count)
        firsts.add(window.first_line)
    # Eight consecutive lines share one window start (at most one boundary crossed).
    assert len(firsts) <= 2


def test_window_whole_file_when_it_fits() -> None:
    text = numbered(10)
    starts = line_starts(text)
    window = fit_window(text, starts, starts[5], 1000, 1000, count)
    assert window.prefix == text[: starts[5]] and window.suffix == text[starts[5] :]
    assert window.first_line == 0


def test_window_on_a_huge_line_keeps_the_text_nearest_the_cursor() -> None:
    text = "x" * 100_000 + "CURSOR" + "y" * 100_000
    starts = line_starts(text)
    offset = text.index("CURSOR") + 6
    window = fit_window(text, starts, offset, 50, 20, count)
    assert window.prefix.endswith("CURSOR") and count(window.prefix) <= 50
    assert window.suffix.startswith("y") and count(window.suffix) <= 20


def test_window_without_suffix_budget() -> None:
    text = numbered(5)
    starts = line_starts(text)
    window = fit_window(text, starts, starts[2], 100, 0, count)
    assert window.suffix == "" and window.suffix_tokens == 0
