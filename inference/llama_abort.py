"""Stop a running `llama_decode` part-way, within one node of its compute graph.

Prompts are evaluated in chunks and cancels are checked between them, but one chunk of 64
tokens takes 0.6 s on two busy cores: a cancel, or a keystroke preempting a warm-up,
would wait that long. llama.cpp checks an abort callback between the graph's nodes, on
its compute thread. A Python callback there would take the GIL hundreds of times per
decode, and wait for it whenever the event loop holds it; so the callback is libc's
`strlen` over a two-byte buffer: it returns 0 (go on) while the buffer is empty and 1
(abort) once a byte is written. A watcher thread writes it when the decode's `halted()`
turns true, polling every 10 ms and only while a decode is being watched.

After an abort `llama_decode` returns 2 and llama.cpp drops the cells of the failed batch;
llama-cpp-python raises before counting the batch in `n_tokens`, and its next `eval`
clears the cache from `n_tokens` on, so the KV cache stays consistent (a test checks that
the next answer is the same as from a fresh cache).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger("ouzel.inference.llama_abort")

POLL_S = 0.01

# The aborts watching a decode on each thread (its native error lines are expected).
_watching: dict[int, DecodeAbort] = {}


def expected_abort_on_this_thread() -> bool:
    """True while a decode on this thread is being aborted on purpose."""
    abort = _watching.get(threading.get_ident())
    return abort is not None and abort.raised


class DecodeAbort:
    """An abort flag for one llama.cpp context, raised while `halted()` is true."""

    def __init__(self, llm: Llama) -> None:
        import llama_cpp

        self._flag = ctypes.create_string_buffer(2)
        strlen = ctypes.cast(ctypes.CDLL(None).strlen, ctypes.c_void_p).value
        if strlen is None:
            raise OSError("libc's strlen was not found")
        # Kept referenced: llama.cpp holds the pointer for the context's lifetime.
        self._callback: Any = llama_cpp.ggml_abort_callback(strlen)
        llama_cpp.llama_set_abort_callback(
            llm._ctx.ctx, self._callback, ctypes.cast(self._flag, ctypes.c_void_p)
        )
        self._halted: Callable[[], bool] | None = None
        self._closed = False
        self._state = threading.Condition()
        threading.Thread(target=self._watch, name="ouzel-llama-abort", daemon=True).start()

    @classmethod
    def install(cls, llm: Llama) -> DecodeAbort | None:
        """The abort for `llm`'s context, or None where this llama-cpp-python has no
        abort callback (cancels then wait for the running chunk)."""
        try:
            return cls(llm)
        except (AttributeError, OSError, TypeError) as exc:
            log.info("no mid-decode abort with this llama-cpp-python: %s", exc)
            return None

    @property
    def raised(self) -> bool:
        return self._flag.raw[0] != 0

    @contextlib.contextmanager
    def watching(self, halted: Callable[[], bool]) -> Iterator[None]:
        """While the block runs (one decode), abort it as soon as `halted()` is true."""
        thread = threading.get_ident()
        with self._state:
            self._halted = halted
            _watching[thread] = self
            self._state.notify()
        try:
            yield
        finally:
            # Under the lock: the watcher cannot raise the flag after it is cleared here,
            # so it never aborts the next, unwatched decode.
            with self._state:
                self._halted = None
                _watching.pop(thread, None)
                self._flag[0] = b"\x00"

    def close(self) -> None:
        with self._state:
            self._closed = True
            self._state.notify()

    def _watch(self) -> None:
        while True:
            with self._state:
                while self._halted is None and not self._closed:
                    self._state.wait()
                if self._closed:
                    return
                if self._halted is not None and self._halted():
                    self._flag[0] = b"\x01"
            time.sleep(POLL_S)
