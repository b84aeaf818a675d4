"""Ghost-text latency: a typing session through `ouzel serve`, next to raw llama-cpp-python.

A scripted typist works on two real files over a real stdio LSP connection with the
default local model. It jumps between places, within a file and between the files (in a
random order): at each it clears a line, rests (`--rest` seconds; after 0.3 s of it the
client sends `ouzel/cursorRest`, as the Neovim and VS Code clients do), then types the line
again at human speed (jittered keystrokes, pauses between words), asking for ghost text
after every keystroke like an editor does (`$/cancelRequest` for the previous request, as
VS Code sends), and sending `ouzel/cursorRest` in pauses longer than 0.3 s, as the clients
do. It waits for the answer to the first keystroke at each place: that is the
time to the first ghost text at a new place. At some places it takes a suggestion by typing
its first characters and accepting the rest, then asks at once at the cursor after it (as
an editor does after an accept): the speculative next suggestion should answer that.

Every model call ouzel finished is replayed at once, in this process, straight through
llama-cpp-python (`Llama.generate`, its own KV prefix reuse) with the same prompt (checked
by hash against ouzel's telemetry) and the same number of generated tokens, while the
server is idle: the two latencies are measured side by side, under the same machine load.

Prints p50/p95 per kind of request (cold, KV-reused, type-through, speculative), the first
ghost text at a new place and after an accept, the share of prompt tokens evaluated again,
stale results shown (must be 0), and ouzel/raw. Repository context is off (`--context`
turns it on; raw then replays prompts without the snippets and the hashes differ).

    python benchmarks/completion_latency.py [--file F] [--file2 G] [--places 10] [--seed 7]
        [--cps 8] [--rest 1.0]
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import statistics
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from rpc import StdioServer  # noqa: E402  (tests/rpc.py: a raw JSON-RPC client)

from ouzel.inference import catalog  # noqa: E402
from ouzel.inference.llama_cpp import (  # noqa: E402
    LlamaOptions,
    fim_token_texts,
    find_model_file,
    open_llama,
)
from ouzel.inference.templates import detect_template  # noqa: E402
from ouzel.server.convert import line_starts  # noqa: E402
from ouzel.server.features.completion_prompt import build_prompt  # noqa: E402
from ouzel.server.features.telemetry import percentile  # noqa: E402
from ouzel.server.settings import load_settings  # noqa: E402

SETTINGS: dict[str, Any] = {
    "completion": {"debounceMs": 0},  # latency without deliberate waiting
    "context": {"enabled": False},  # the same prompts as raw (see --context)
}
SECOND_VERSIONS = 100_000  # the second file's versions start here (telemetry has no URIs)


class StampedQueue(Queue):  # type: ignore[type-arg]
    """Stamps each message with its arrival time on the reader thread."""

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        item["_at"] = time.perf_counter()
        super().put(item, block, timeout)


@dataclass
class Request:
    id: int
    version: int
    offset: int
    sent: float
    text: str  # the document when it was sent
    answered: float | None = None
    items: list[dict[str, Any]] | None = None
    error: int | None = None
    client_cancelled: bool = False
    kind: str = "none"  # cold / reused / cache / none (no model call)
    raw_s: float | None = None
    stale: bool = False
    crossed: bool = False
    place: int = -1
    first: bool = False  # the first request at its place (waited for)
    after_accept: bool = False  # right after accepting a suggestion

    @property
    def latency_ms(self) -> float | None:
        return (self.answered - self.sent) * 1000 if self.answered is not None else None


@dataclass
class Typist:
    """Drives one document over the connection and keeps the client's view of it."""

    server: StdioServer
    uri: str
    text: str
    telemetry: Path
    raw: RawModel
    rng: random.Random
    version: int = 1
    requests: list[Request] = field(default_factory=list)
    pending: Request | None = None
    shown: Request | None = None
    shift: float = 0.0  # time spent in raw replays, added to the typist's schedule
    telemetry_offset: int = 0
    models: dict[int, dict[str, Any]] = field(default_factory=dict)
    served: dict[int, dict[str, Any]] = field(default_factory=dict)
    accepted: int = 0
    hash_mismatches: int = 0
    cps: float = 8.0
    path: str = ""  # the file's path in the prompt
    rest: float = 1.0
    place: int = -1
    owners: dict[int, Typist] = field(default_factory=dict)  # request id → its typist
    rests: int = 0  # ouzel/cursorRest notifications sent

    # --- editing ---------------------------------------------------------------------

    def position(self, offset: int) -> tuple[int, int]:
        """The LSP position (UTF-16) of a code point offset."""
        before = self.text[:offset]
        line_start = before.rfind("\n") + 1
        return before.count("\n"), len(before[line_start:].encode("utf-16-le")) // 2

    def edit(self, start: int, end: int, new: str) -> None:
        (sl, sc), (el, ec) = self.position(start), self.position(end)
        self.text = self.text[:start] + new + self.text[end:]
        self.version += 1
        self.server.client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": self.uri, "version": self.version},
                "contentChanges": [
                    {
                        "range": {
                            "start": {"line": sl, "character": sc},
                            "end": {"line": el, "character": ec},
                        },
                        "text": new,
                    }
                ],
            },
        )

    def ask(self, offset: int) -> Request:
        """Cancel the outstanding request (as VS Code does) and ask at `offset`."""
        if self.pending is not None and self.pending.answered is None:
            self.pending.client_cancelled = True
            self.server.client.notify("$/cancelRequest", {"id": self.pending.id})
        line, character = self.position(offset)
        sent = time.perf_counter()  # before: a cache hit may be answered at once
        request_id = self.server.client.request_async(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": self.uri},
                "position": {"line": line, "character": character},
                "context": {"triggerKind": 2},
            },
        )
        request = Request(request_id, self.version, offset, sent, self.text, place=self.place)
        self.requests.append(request)
        self.owners[request_id] = self
        self.pending = request
        self.shown = None
        return request

    # --- time passing ------------------------------------------------------------------

    def wait(self, seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        """Handle responses for `seconds` of typist time (raw replays do not count)."""
        deadline = time.perf_counter() + seconds
        while not until():
            remaining = deadline + self.shift - time.perf_counter()
            if remaining <= 0:
                break
            try:
                message = self.server.client.inbox.get(timeout=remaining)
            except Empty:
                break
            self.owners.get(message.get("id", -1), self).receive(message)
        self.shift = 0.0

    def receive(self, message: dict[str, Any]) -> None:
        request = next((r for r in self.requests if r.id == message.get("id")), None)
        if request is None:
            return
        request.answered = message["_at"]
        if "error" in message:
            request.error = message["error"]["code"]
            return
        request.items = message["result"]["items"]
        self.read_telemetry()
        served = self.served.get(request.version)
        if served is not None and served["kind"] in ("cache", "speculative"):
            request.kind = served["kind"]
        elif request.version in self.models:
            request.kind = self.models[request.version]["kind"]
        if request.items and request.version != self.version:
            # Answered for an older version. Stale for sure if a newer request was already
            # answered (the server had seen the newer version); else it crossed a keystroke
            # in flight, and the client drops it because it cancelled the request.
            newer_answered = any(
                r.answered is not None
                and r.version > request.version
                and r.answered < request.answered
                for r in self.requests
            )
            request.stale = newer_answered
            request.crossed = not newer_answered
        elif request.items:
            self.shown = request
            self.server.client.notify("textDocument/didShowCompletion", {"item": request.items[0]})
        model = self.models.get(request.version)
        if request.kind in ("cold", "reused") and model and model["stopReason"] != "cancelled":
            started = time.perf_counter()
            request.raw_s = self.raw.replay(request, model, self)
            self.shift += time.perf_counter() - started

    def read_telemetry(self) -> None:
        if not self.telemetry.exists():
            return
        with self.telemetry.open(encoding="utf-8") as handle:
            handle.seek(self.telemetry_offset)
            for line in handle:
                event = json.loads(line)
                if event["event"] == "model":
                    self.models[event["version"]] = event
                elif event["event"] == "served":
                    self.served.setdefault(event["version"], event)
            self.telemetry_offset = handle.tell()

    # --- the session -------------------------------------------------------------------

    def keystroke_delay(self, typed: str) -> float:
        delay = self.rng.uniform(0.6, 1.4) / self.cps
        if typed in " (,.:=" and self.rng.random() < 0.15:
            delay += self.rng.uniform(0.4, 0.9)  # a pause between words
        return delay

    def retype(self, line_text: str, start: int, take_suggestion: bool, place: int) -> None:
        """Jump to the line, clear it after its indentation, rest, and type it again."""
        indent = len(line_text) - len(line_text.lstrip())
        content = line_text[indent:]
        cursor = start + indent
        self.place = place
        self.edit(cursor, cursor + len(content), "")  # a deletion: no request
        if self.rest > 0:
            self.wait(min(0.3, self.rest))
            self.rest_at(cursor)
            self.wait(max(0.0, self.rest - 0.3))
        take_at = len(content) * 2 // 5 if take_suggestion else -1
        for index, ch in enumerate(content):
            if index == take_at and self.take_suggestion(cursor):
                return
            self.edit(cursor, cursor, ch)
            cursor += 1
            request = self.ask(cursor)
            if index == 0:  # the first ghost text at this place: wait for it
                request.first = True
                self.wait(60, until=lambda r=request: r.answered is not None)
                self.wait(0.5)
                continue
            delay = self.keystroke_delay(ch)
            if delay > 0.3:  # a pause: the editors send ouzel/cursorRest after 0.3 s
                self.wait(0.3)
                self.rest_at(cursor)
                delay -= 0.3
            self.wait(delay)
        self.wait(1.5)  # end of line: a suggestion for what comes next may show

    def rest_at(self, cursor: int) -> None:
        line, character = self.position(cursor)
        self.server.client.notify(
            "ouzel/cursorRest",
            {"textDocument": {"uri": self.uri}, "position": {"line": line, "character": character}},
        )
        self.rests += 1

    def take_suggestion(self, cursor: int) -> bool:
        """Wait for a suggestion, type three characters of it, accept the rest."""
        self.wait(8, until=lambda: self.shown is not None)
        if self.shown is None or not self.shown.items:
            return False
        item = self.shown.items[0]
        suggestion, suggestion_id = item["insertText"], item["command"]["arguments"][0]
        for ch in suggestion[:3]:
            self.edit(cursor, cursor, ch)
            cursor += 1
            request = self.ask(cursor)
            self.wait(self.keystroke_delay(ch), until=lambda r=request: r.answered is not None)
            self.wait(self.keystroke_delay(ch))
        rest = suggestion[3:]
        if rest:
            self.edit(cursor, cursor, rest)
            cursor += len(rest)
            self.server.client.request_async(
                "workspace/executeCommand",
                {"command": "ouzel.accepted", "arguments": [suggestion_id]},
            )
            self.accepted += 1
            request = self.ask(cursor)  # what an editor asks right after an accept
            request.after_accept = True
            self.wait(30, until=lambda: request.answered is not None)
        self.wait(1.0)
        return True


class RawModel:
    """llama-cpp-python without ouzel: the same model file, options and prompts."""

    def __init__(self, settings: Any) -> None:
        # The file `ouzel serve` loads for the default `local` profile.
        self.llm = open_llama(find_model_file(catalog.default_model()), LlamaOptions())
        self.template = detect_template(self.llm.metadata, fim_token_texts(self.llm))
        self.settings = settings
        self.counts: dict[str, int] = {}
        self.prompt_tokens = 0
        self.reused_tokens = 0

    def count(self, text: str) -> int:
        if text not in self.counts:
            self.counts[text] = len(
                self.llm.tokenize(text.encode("utf-8", "replace"), add_bos=False)
            )
        return self.counts[text]

    def replay(self, request: Request, model: dict[str, Any], typist: Typist) -> float:
        import hashlib

        import llama_cpp
        import numpy as np

        plan = build_prompt(
            request.text,
            line_starts(request.text),
            request.offset,
            path=typist.path,
            language_id="python",
            template=self.template,
            count_tokens=self.count,
            # ouzel's smaller prompt at a new place (completion.cold_prompt_tokens)
            settings=self.settings.model_copy(
                update={"prompt_tokens": self.settings.cold_prompt_tokens}
            )
            if model.get("smallPrompt")
            else self.settings,
        )
        assert plan is not None
        prompt = plan.request.prompt
        if hashlib.sha256(prompt.encode("utf-8", "replace")).hexdigest()[:16] != model["promptSha"]:
            typist.hash_mismatches += 1
        target = int(model["generatedTokens"])
        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        started = time.perf_counter()
        tokens = self.llm.tokenize(prompt.encode("utf-8", "replace"), add_bos=True, special=False)
        limit = min(self.llm.n_tokens, len(tokens))
        differs = np.flatnonzero(self.llm.input_ids[:limit] != np.asarray(tokens[:limit]))
        reused = int(differs[0]) if len(differs) else limit
        stream = self.llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0)
        for generated, token in enumerate(stream):
            if generated >= target or llama_cpp.llama_vocab_is_eog(vocab, token):
                break
        elapsed = time.perf_counter() - started
        self.prompt_tokens += len(tokens)
        self.reused_tokens += reused
        return elapsed


def pick_places(text: str, count: int, rng: random.Random) -> list[int]:
    """Line numbers worth typing: code lines inside blocks, 20 to 70 characters."""
    lines = text.split("\n")
    candidates = []
    in_docstring = False
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(('"""', "'''")):
            in_docstring = (
                not (stripped.count('"""') == 2 or stripped.count("'''") == 2) and not in_docstring
            )
            continue
        if in_docstring or not line.startswith("    ") or stripped.startswith("#"):
            continue
        if 20 <= len(stripped) <= 70 and not stripped.startswith(("def ", "class ", "@")):
            candidates.append(number)
    step = max(1, len(candidates) // count)
    chosen = [
        candidates[min(len(candidates) - 1, i * step + rng.randrange(step))] for i in range(count)
    ]
    return sorted(set(chosen))


def summarize(typists: list[Typist], raw: RawModel, elapsed: float) -> dict[str, Any]:
    requests = [r for t in typists for r in t.requests]
    done = [r for r in requests if r.answered is not None and r.error is None]
    by_kind: dict[str, list[Request]] = {}
    for request in done:
        by_kind.setdefault(request.kind, []).append(request)

    def row(chosen: list[Request]) -> dict[str, Any]:
        ouzel = [r.latency_ms for r in chosen if r.latency_ms is not None]
        raws = [r.raw_s * 1000 for r in chosen if r.raw_s is not None]
        ratios = [r.latency_ms / (r.raw_s * 1000) for r in chosen if r.raw_s and r.latency_ms]
        return {
            "n": len(chosen),
            "ouzel_p50": percentile(ouzel, 0.5),
            "ouzel_p95": percentile(ouzel, 0.95),
            "raw_p50": percentile(raws, 0.5),
            "raw_p95": percentile(raws, 0.95),
            "ratio_median": statistics.median(ratios) if ratios else None,
        }

    rows = {kind: row(by_kind.get(kind, [])) for kind in ("cold", "reused", "cache", "speculative")}
    first = [r for r in done if r.first]
    after_accept = [r for r in done if r.after_accept]
    uncached = [r for r in done if r.raw_s and r.latency_ms]
    ratios = [r.latency_ms / (r.raw_s * 1000) for r in uncached if r.latency_ms]
    merged: dict[int, dict[str, Any]] = {}
    for typist in typists:  # each read every event; versions tell the files apart
        merged |= typist.models
    models = list(merged.values())
    prompt = sum(m["promptTokens"] for m in models)
    reused = sum(m["reusedTokens"] for m in models)
    in_line = [m for m in models if m.get("sameLine")]
    in_line_prompt = sum(m["promptTokens"] for m in in_line)
    in_line_reused = sum(m["reusedTokens"] for m in in_line)
    served = [e for t in typists for e in t.served.values()]
    return {
        "seconds": round(elapsed, 1),
        "requests": len(requests),
        "answered": len(done),
        "cancelled_by_client": sum(r.client_cancelled for r in requests),
        "shown": sum(1 for r in requests if r.items and not r.stale and not r.crossed),
        "accepted": sum(t.accepted for t in typists),
        "rows": rows,
        "new_place": row(first) | {"with_text": sum(1 for r in first if r.items)},
        "new_place_kinds": dict(Counter(r.kind for r in first)),
        "after_accept": row(after_accept)
        | {
            "speculative_hits": sum(r.kind == "speculative" for r in after_accept),
            "with_text": sum(1 for r in after_accept if r.items),
        },
        "uncached_ratio_median": statistics.median(ratios) if ratios else None,
        "uncached_ratio_of_medians": (
            statistics.median([r.latency_ms for r in uncached if r.latency_ms])
            / statistics.median([r.raw_s * 1000 for r in uncached if r.raw_s])
            if uncached
            else None
        ),
        "model_calls": len(models),
        "evaluated_again_share": (prompt - reused) / prompt if prompt else None,
        "in_line_calls": len(in_line),
        "in_line_reused_share": in_line_reused / in_line_prompt if in_line_prompt else None,
        "raw_reused_share": raw.reused_tokens / raw.prompt_tokens if raw.prompt_tokens else None,
        "cache_server_p95": percentile(
            [e["latencyMs"] for e in served if e["kind"] in ("cache", "speculative")], 0.95
        ),
        "reused_generation": _generation(
            [m for m in models if m["kind"] == "reused" and m["stopReason"] != "cancelled"]
        ),
        "small_prompts": sum(bool(m.get("smallPrompt")) for m in models),
        "cursor_rests": sum(t.rests for t in typists),
        "stale_shown": sum(r.stale for r in requests),
        "crossed_in_flight": sum(r.crossed for r in requests),
        "prompt_hash_mismatches": sum(t.hash_mismatches for t in typists),
    }


def _generation(models: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the time of model calls goes: prompt tokens evaluated, tokens generated."""
    per_token = [
        (m["modelMs"] - m["firstTokenMs"]) / (m["generatedTokens"] - 1)
        for m in models
        if m.get("firstTokenMs") is not None and m["generatedTokens"] > 1
    ]
    return {
        "n": len(models),
        "evaluated_p50": percentile([m["promptTokens"] - m["reusedTokens"] for m in models], 0.5),
        "generated_p50": percentile([m["generatedTokens"] for m in models], 0.5),
        "first_token_ms_p50": percentile(
            [m["firstTokenMs"] for m in models if m.get("firstTokenMs") is not None], 0.5
        ),
        "ms_per_token_p50": percentile(per_token, 0.5),
        "model_ms_p50": percentile([m["modelMs"] for m in models], 0.5),
    }


def print_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    def ms(value: float | None) -> str:
        return "–" if value is None else f"{value:,.1f}"

    def share(value: float | None) -> str:
        return "–" if value is None else f"{value:.1%}"

    def ratio(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    labels = {
        "cold": "cold",
        "reused": "KV-reused",
        "cache": "type-through",
        "speculative": "speculative",
    }
    print(
        f"\nouzel completion latency: {args.file.name} + {args.file2.name}, {args.places} places, "
        f"seed {args.seed}, {args.cps} chars/s, rest {args.rest} s, {report['seconds']} s"
    )
    print(
        f"{'kind':<18}{'n':>5}{'ouzel p50':>12}{'ouzel p95':>12}{'raw p50':>10}{'raw p95':>10}"
        f"{'ouzel/raw':>11}"
    )

    def line(label: str, row: dict[str, Any]) -> None:
        print(
            f"{label:<18}{row['n']:>5}{ms(row['ouzel_p50']):>12}{ms(row['ouzel_p95']):>12}"
            f"{ms(row['raw_p50']):>10}{ms(row['raw_p95']):>10}{ratio(row['ratio_median']):>11}"
        )

    for kind, row in report["rows"].items():
        line(labels[kind], row)
    line("new place (1st)", report["new_place"])
    line("after an accept", report["after_accept"])
    print(
        "(ms at the client; ouzel/raw is the median of per-request ratios; type-through and "
        f"speculative p95 inside the server: {ms(report['cache_server_p95'])} ms)"
    )
    place = report["new_place"]
    print(
        f"new place: the first keystroke's answer at each of {place['n']} places "
        f"({place['with_text']} with ghost text; kinds {report['new_place_kinds']})"
    )
    accept = report["after_accept"]
    print(
        f"after an accept: {accept['n']} requests, {accept['speculative_hits']} answered by the "
        f"speculative suggestion, {accept['with_text']} with ghost text"
    )
    gen = report["reused_generation"]
    print(
        f"KV-reused model calls ({gen['n']}): p50 {ms(gen['evaluated_p50'])} prompt tokens "
        f"evaluated, {ms(gen['generated_p50'])} generated, first token {ms(gen['first_token_ms_p50'])} ms, "
        f"{ms(gen['ms_per_token_p50'])} ms per further token, {ms(gen['model_ms_p50'])} ms in all; "
        f"smaller prompts: {report['small_prompts']} of {report['model_calls']} model calls; "
        f"ouzel/cursorRest sent: {report['cursor_rests']}"
    )
    print(
        f"uncached requests, ouzel/raw: median ratio {ratio(report['uncached_ratio_median'])}, "
        f"ratio of medians {ratio(report['uncached_ratio_of_medians'])}"
    )
    print(
        f"prompt tokens evaluated again: {share(report['evaluated_again_share'])} "
        f"over {report['model_calls']} model calls "
        f"(raw llama-cpp-python on the finished prompts: "
        f"{share(1 - report['raw_reused_share'] if report['raw_reused_share'] is not None else None)})"
    )
    print(
        f"prompt tokens reused on consecutive keystrokes within a line: "
        f"{share(report['in_line_reused_share'])} over {report['in_line_calls']} calls"
    )
    print(
        f"stale results shown: {report['stale_shown']} "
        f"(answers that crossed a keystroke in flight, dropped by the client: "
        f"{report['crossed_in_flight']})"
    )
    print(
        f"requests {report['requests']}, answered {report['answered']}, cancelled by the client "
        f"{report['cancelled_by_client']}, suggestions shown {report['shown']}, "
        f"accepted {report['accepted']}, prompt hash mismatches {report['prompt_hash_mismatches']}"
    )


def open_document(server: StdioServer, uri: str, text: str, version: int) -> None:
    server.client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": version, "text": text}},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--file", type=Path, default=Path(textwrap.__file__), help="a real source file"
    )
    parser.add_argument(
        "--file2", type=Path, default=Path(shlex.__file__), help="a second real source file"
    )
    parser.add_argument("--places", type=int, default=10, help="lines to clear and type again")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cps", type=float, default=8.0, help="typing speed, characters/second")
    parser.add_argument(
        "--rest", type=float, default=1.0, help="seconds the cursor rests at a new place"
    )
    parser.add_argument("--context", action="store_true", help="repository context on")
    parser.add_argument(
        "--no-background",
        action="store_true",
        help="warm-ups and the speculative suggestion off (to compare)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    options = json.loads(json.dumps(SETTINGS))
    options["context"]["enabled"] = args.context
    if args.no_background:
        options["completion"] |= {"warmUp": False, "speculative": False}
    settings = load_settings(options).settings.completion
    with tempfile.TemporaryDirectory(prefix="ouzel-bench-") as folder:
        tmp = Path(folder)
        workspace = tmp / "workspace"
        workspace.mkdir()
        sources = {}
        for path in (args.file, args.file2):
            sources[path.name] = path.read_text(encoding="utf-8")
            (workspace / path.name).write_text(sources[path.name], encoding="utf-8")
        raw = RawModel(settings)
        server = StdioServer(tmp)
        server.client.inbox = StampedQueue()
        try:
            server.client.initialize(root=workspace, options=options)
            warm = (workspace / "warm.py").as_uri()
            open_document(server, warm, "x = 1\n", 1)
            server.client.request(  # loads the model (not part of the figures)
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": warm},
                    "position": {"line": 1, "character": 0},
                    "context": {"triggerKind": 1},
                },
                timeout=300,
            )
            owners: dict[int, Typist] = {}
            typists = []
            telemetry = tmp / "state" / "ouzel" / "completions.jsonl"
            for number, (name, source) in enumerate(sources.items()):
                uri = (workspace / name).as_uri()
                version = 1 if number == 0 else SECOND_VERSIONS
                open_document(server, uri, source, version)
                typist = Typist(server, uri, source, telemetry, raw, rng, version=version)
                typist.cps, typist.rest, typist.path, typist.owners = (
                    args.cps,
                    args.rest,
                    name,
                    owners,
                )
                typists.append(typist)
            # Places in both files, visited in a random order: jumps within a file and
            # between the files.
            visits = [
                (typist, line)
                for typist in typists
                for line in pick_places(typist.text, max(1, args.places // len(typists)), rng)
            ]
            rng.shuffle(visits)
            started = time.perf_counter()
            for number, (typist, place) in enumerate(visits):
                starts = line_starts(typist.text)
                line_text = typist.text[starts[place] : starts[place + 1]].rstrip("\n")
                typist.retype(
                    line_text, starts[place], take_suggestion=number % 3 == 1, place=number
                )
            typists[0].wait(3)
            report = summarize(typists, raw, time.perf_counter() - started)
        finally:
            server.close()
    report["uptime"] = Path("/proc/loadavg").read_text().split()[:3]
    print_report(report, args)
    print(f"load average at the end: {' '.join(report['uptime'])}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
