"""Completion prompts: fill-in-the-middle templates per model family, and the token budget.

A template turns (prefix, suffix, path, snippets) into one prompt string. The parts that
change least come first (repository snippets, the file header, the start of the prefix
window), so consecutive requests share a long token prefix and llama.cpp evaluates only
the changed tail again. Repository context enters through `snippets`, the one seam for it.

Families are detected from GGUF metadata (`detect_template`): the FIM tokens llama.cpp
found in the vocabulary, then `general.architecture` / `general.name`. Models without FIM
tokens (the embedded gemma3) get a plain prefix prompt with the path as a comment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ouzel.indexer.text import line_of

Family = Literal["qwen", "starcoder", "deepseek", "codellama", "codestral", "plain"]
FAMILIES: tuple[Family, ...] = ("qwen", "starcoder", "deepseek", "codellama", "codestral", "plain")


@dataclass(frozen=True)
class ContextSnippet:
    """A piece of another file (or of this one) that helps the model; from issue 5's engine."""

    path: str
    text: str
    source: str  # where it came from: "definition", "search", "recent-edit", …


@dataclass(frozen=True)
class PromptTemplate:
    family: Family
    fim_prefix: str = ""
    fim_suffix: str = ""
    fim_middle: str = ""
    file_sep: str = ""  # starts a file in repository-level prompts (Qwen, StarCoder2)
    suffix_first: bool = False  # SPM order: the suffix goes before the prefix
    stop: tuple[str, ...] = ()

    @property
    def is_fim(self) -> bool:
        return bool(self.fim_prefix)

    @property
    def special_tokens(self) -> tuple[str, ...]:
        return tuple(
            token
            for token in (self.fim_prefix, self.fim_suffix, self.fim_middle, self.file_sep)
            if token
        )

    def render(
        self,
        prefix: str,
        suffix: str,
        path: str,
        snippets: Sequence[ContextSnippet] = (),
        comment: str = "#",
    ) -> str:
        """The prompt for a cursor between `prefix` and `suffix` in the file at `path`.

        The cursor's line up to the cursor ends the prefix in every template. Putting it
        after the middle marker instead (llama.vscode's order, which keeps the suffix in
        the KV cache while typing on a line) cost Qwen2.5-Coder-0.5B exact match on the
        HumanEval infill set (0.375 against 0.450, 6 of 40 answers empty: the model closes
        the middle at once), so quality wins over that reuse.
        """
        prefix, suffix = self.sanitize(prefix), self.sanitize(suffix)
        snippets = [
            ContextSnippet(s.path, self.sanitize(s.text), s.source) for s in snippets if s.text
        ]
        if self.family == "plain":
            return _commented_context(path, snippets, comment) + prefix
        if self.file_sep:
            return self._render_repo_level(prefix, suffix, path, snippets)
        head = _commented_context(path, snippets, comment)
        if self.suffix_first:
            return f"{self.fim_suffix}{suffix}{self.fim_prefix}{head}{prefix}"
        if self.family == "codellama":
            # Code Llama's infill format puts a space after <PRE> and before <MID>.
            return f"{self.fim_prefix} {head}{prefix} {self.fim_suffix}{suffix} {self.fim_middle}"
        return f"{self.fim_prefix}{head}{prefix}{self.fim_suffix}{suffix}{self.fim_middle}"

    def _render_repo_level(
        self, prefix: str, suffix: str, path: str, snippets: Sequence[ContextSnippet]
    ) -> str:
        files = "".join(f"{self.file_sep}{s.path}\n{_ending_newline(s.text)}" for s in snippets)
        if self.family == "starcoder":
            # StarCoder2: <file_sep><fim_prefix>path\ncode<fim_suffix>…<fim_middle>
            lead = self.file_sep if snippets else ""
            return (
                f"{files}{lead}{self.fim_prefix}{path}\n{prefix}"
                f"{self.fim_suffix}{suffix}{self.fim_middle}"
            )
        if not snippets:
            # Qwen2.5-Coder's file-level FIM, no path header: on HumanEval infilling (100
            # holes, Qwen 0.5B) `<|file_sep|>path` before a lone file lowered exact match
            # from 0.36 to 0.33 (the model takes a file_sep prompt for a repository).
            return f"{self.fim_prefix}{prefix}{self.fim_suffix}{suffix}{self.fim_middle}"
        # Qwen2.5-Coder: <|file_sep|>path\n<|fim_prefix|>code<|fim_suffix|>…<|fim_middle|>
        return (
            f"{files}{self.file_sep}{path}\n{self.fim_prefix}{prefix}"
            f"{self.fim_suffix}{suffix}{self.fim_middle}"
        )

    def sanitize(self, text: str) -> str:
        """Break up control-token text inside user code so it stays plain text."""
        for token in self.special_tokens:
            if token in text:
                text = text.replace(token, token[:1] + "\u200b" + token[1:])
        return text


def _ending_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _commented_context(path: str, snippets: Sequence[ContextSnippet], comment: str) -> str:
    parts = []
    for snippet in snippets:
        body = "".join(f"{comment} {line}".rstrip() + "\n" for line in snippet.text.splitlines())
        parts.append(f"{comment} Context from {snippet.path} ({snippet.source}):\n{body}")
    if path:
        parts.append(f"{comment} Path: {path}\n")
    return "".join(parts)


# --- the families ---------------------------------------------------------------------

TEMPLATES: dict[Family, PromptTemplate] = {
    "qwen": PromptTemplate(
        "qwen",
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
        file_sep="<|file_sep|>",
        stop=(
            "<|endoftext|>",
            "<|file_sep|>",
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
            "<|fim_pad|>",
            "<|repo_name|>",
            "<|im_start|>",
            "<|im_end|>",
        ),
    ),
    "starcoder": PromptTemplate(
        "starcoder",
        "<fim_prefix>",
        "<fim_suffix>",
        "<fim_middle>",
        file_sep="<file_sep>",
        stop=("<|endoftext|>", "<file_sep>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    ),
    "deepseek": PromptTemplate(
        "deepseek",
        "<｜fim▁begin｜>",
        "<｜fim▁hole｜>",
        "<｜fim▁end｜>",
        stop=(
            "<｜end▁of▁sentence｜>",
            "<｜fim▁begin｜>",
            "<｜fim▁hole｜>",
            "<｜fim▁end｜>",
            "<|EOT|>",
        ),
    ),
    "codellama": PromptTemplate(
        "codellama", "<PRE>", "<SUF>", "<MID>", stop=("<EOT>", "<PRE>", "<SUF>", "<MID>", "</s>")
    ),
    "codestral": PromptTemplate(
        "codestral",
        "[PREFIX]",
        "[SUFFIX]",
        "[MIDDLE]",
        suffix_first=True,
        stop=("</s>", "[PREFIX]", "[SUFFIX]", "[MIDDLE]"),
    ),
    "plain": PromptTemplate("plain"),
}

# Text of the FIM prefix token as llama.cpp finds it in each family's vocabulary.
_PREFIX_TOKEN_FAMILY: dict[str, Family] = {
    "<|fim_prefix|>": "qwen",
    "<fim_prefix>": "starcoder",
    "<fim-prefix>": "starcoder",
    "<｜fim▁begin｜>": "deepseek",
    "<PRE>": "codellama",
    "▁<PRE>": "codellama",
    "[PREFIX]": "codestral",
}

# Metadata keys whose presence says the GGUF declares FIM tokens.
FIM_METADATA_KEYS = (
    "tokenizer.ggml.fim_pre_token_id",
    "tokenizer.ggml.prefix_token_id",
)


def detect_template(
    metadata: Mapping[str, str],
    fim_tokens: Mapping[str, str] | None = None,
    override: str = "auto",
) -> PromptTemplate:
    """The template for a model, from its GGUF metadata and the texts of its FIM tokens.

    `fim_tokens` maps "pre"/"suf"/"mid" to token texts (llama.cpp also finds FIM tokens
    by their text when the metadata lacks the ids). `override` is the profile's `template`
    setting; "auto" detects.
    """
    if override != "auto" and override in TEMPLATES:
        return TEMPLATES[override]
    family = _family_from_tokens(fim_tokens or {})
    if family is None:
        family = _family_from_names(metadata)
    if family is None:
        return TEMPLATES["plain"]
    template = TEMPLATES[family]
    if fim_tokens and fim_tokens.get("pre") and family != "codellama":
        # Use the exact token texts of this vocabulary (e.g. CodeGemma shares Qwen's names).
        template = PromptTemplate(
            family,
            fim_tokens["pre"],
            fim_tokens.get("suf") or template.fim_suffix,
            fim_tokens.get("mid") or template.fim_middle,
            file_sep=template.file_sep,
            suffix_first=template.suffix_first,
            stop=template.stop,
        )
    return template


def _family_from_tokens(fim_tokens: Mapping[str, str]) -> Family | None:
    text = (fim_tokens.get("pre") or "").strip()
    return _PREFIX_TOKEN_FAMILY.get(text) or _PREFIX_TOKEN_FAMILY.get(text.lstrip("▁"))


def _family_from_names(metadata: Mapping[str, str]) -> Family | None:
    arch = metadata.get("general.architecture", "").lower()
    name = " ".join(
        metadata.get(key, "") for key in ("general.name", "general.basename", "general.finetune")
    ).lower()
    compact = re.sub(r"[\s_\-.]", "", name)
    has_fim = any(key in metadata for key in FIM_METADATA_KEYS)
    if arch == "starcoder2" or "starcoder" in compact:
        return "starcoder"
    if "codestral" in compact:
        return "codestral"
    if "deepseek" in compact and "coder" in compact:
        return "deepseek"
    if "codellama" in compact:
        return "codellama"
    if arch.startswith("qwen") and ("coder" in compact or has_fim):
        return "qwen"
    return None


# --- comment syntax for headers ---------------------------------------------------------

_COMMENTS = {
    "//": [
        "c",
        "cpp",
        "c++",
        "cc",
        "h",
        "hpp",
        "cs",
        "csharp",
        "go",
        "java",
        "javascript",
        "js",
        "jsx",
        "typescript",
        "ts",
        "tsx",
        "typescriptreact",
        "javascriptreact",
        "rust",
        "rs",
        "swift",
        "kotlin",
        "kt",
        "scala",
        "dart",
        "php",
        "zig",
    ],
    "--": ["lua", "sql", "haskell", "hs", "elm", "ada"],
    ";": ["clojure", "clj", "lisp", "scheme", "el", "elisp"],
    "%": ["erlang", "erl", "tex", "latex", "matlab"],
}
_COMMENT_BY_KEY = {key: comment for comment, keys in _COMMENTS.items() for key in keys}


def line_comment(language_id: str, path: str = "") -> str:
    """The line-comment marker for a language id or file extension ("#" by default)."""
    key = language_id.lower()
    if key in _COMMENT_BY_KEY:
        return _COMMENT_BY_KEY[key]
    extension = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    return _COMMENT_BY_KEY.get(extension, "#")


# --- the token budget -------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The text around the cursor that fits the budget, on line boundaries."""

    prefix: str
    suffix: str
    first_line: int  # first line of the prefix window
    last_line: int  # last line of the suffix window (inclusive)
    prefix_tokens: int
    suffix_tokens: int


def fit_window(
    text: str,
    starts: Sequence[int],
    offset: int,
    prefix_budget: int,
    suffix_budget: int,
    count_tokens: Callable[[str], int],
    align_lines: int = 16,
) -> Window:
    """Whole lines before and after the cursor that fit each budget.

    The window edges snap inward to multiples of `align_lines`, so they stay put while
    the user types on nearby lines: a stable window start keeps the prompt's token prefix
    (and llama.cpp's KV cache) valid from one keystroke to the next. The cursor's own line
    is always included up to the cursor (only its end, if it alone exceeds the budget).
    """
    line = line_of(starts, offset)
    prefix, first, prefix_tokens = _prefix_window(
        text, starts, line, offset, prefix_budget, count_tokens, align_lines
    )
    suffix, last, suffix_tokens = _suffix_window(
        text, starts, line, offset, suffix_budget, count_tokens, align_lines
    )
    return Window(prefix, suffix, first, last, prefix_tokens, suffix_tokens)


def _prefix_window(
    text: str,
    starts: Sequence[int],
    line: int,
    offset: int,
    budget: int,
    count_tokens: Callable[[str], int],
    align: int,
) -> tuple[str, int, int]:
    head = text[max(starts[line], offset - budget * 8) : offset]
    used = count_tokens(head)
    if used > budget or starts[line] < offset - budget * 8:
        head = _cut_to_budget(head, budget, count_tokens, keep_end=True)
        return head, line, count_tokens(head)
    costs: list[int] = []  # costs[i]: tokens of line (line - 1 - i)
    first = line
    while first > 0:
        cost = _line_cost(text, starts, first - 1, budget, count_tokens)
        if used + cost > budget:
            break
        used += cost
        costs.append(cost)
        first -= 1
    if first > 0:  # snap forward to an aligned line, so the window start stays put
        aligned = min(line, -(-first // align) * align)
        used -= sum(costs[line - aligned :])
        first = aligned
    return text[starts[first] : offset], first, used


def _suffix_window(
    text: str,
    starts: Sequence[int],
    line: int,
    offset: int,
    budget: int,
    count_tokens: Callable[[str], int],
    align: int,
) -> tuple[str, int, int]:
    if budget <= 0:
        return "", line, 0
    end_of_line = starts[line + 1] if line + 1 < len(starts) else len(text)
    tail = text[offset : min(end_of_line, offset + budget * 8)]
    used = count_tokens(tail)
    if used > budget or end_of_line > offset + budget * 8:
        tail = _cut_to_budget(tail, budget, count_tokens, keep_end=False)
        return tail, line, count_tokens(tail)
    costs: list[int] = []  # costs[i]: tokens of line (line + 1 + i)
    last = line
    while last + 1 < len(starts):
        cost = _line_cost(text, starts, last + 1, budget, count_tokens)
        if used + cost > budget:
            break
        used += cost
        costs.append(cost)
        last += 1
    if last + 1 < len(starts):  # more lines follow: snap back to an aligned end
        aligned = max(line, (last + 1) // align * align - 1)
        used -= sum(costs[aligned - line :])
        last = aligned
    end = starts[last + 1] if last + 1 < len(starts) else len(text)
    return text[offset:end], last, used


def _line_cost(
    text: str, starts: Sequence[int], line: int, budget: int, count_tokens: Callable[[str], int]
) -> int:
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    if end - starts[line] > budget * 8:  # too long to fit anyway: do not tokenize it
        return budget + 1
    return count_tokens(text[starts[line] : end])


def _cut_to_budget(
    text: str, budget: int, count_tokens: Callable[[str], int], keep_end: bool
) -> str:
    """The start (or the end) of `text` that fits `budget` tokens."""

    def part(n: int) -> str:
        return text[len(text) - n :] if keep_end else text[:n]

    keep = min(len(text), budget * 4)  # about four characters per token, then shrink
    while keep > 0 and count_tokens(part(keep)) > budget:
        keep = keep * 3 // 4
    return part(keep) if keep else ""
