"""Does the packed context hold the definition the next line needs? Measured on CPython.

Tasks come from the standard library of the running interpreter: in a module, one line
that uses a name defined at the top level of *another* stdlib module (`from m import name`
or `m.name`) is removed; the cursor stands where the line was (after its indentation). A
task succeeds when the packed context contains that definition's first line, taken from
the defining file.

Strategies, each alone with the same token budget, then fused:
  window       the local window only (prefix and suffix around the cursor)
  definitions  Jedi: names near the cursor and the file's imports
  bm25         the workspace index's full-text search over chunks
  recent       the ring buffer of recently opened / edited code
  combined     definitions + bm25 + recent, fused and packed by the engine

The recent buffer is fed as an editor session would: tasks run in path order (a developer
moving through a package); each task opens its file and leaves its cursor region behind.
Jedi's per-file import table is built when a file opens (in an editor: in the background
while the user reads); that time is reported apart from the request time.

    python benchmarks/context_recall.py [--tasks 200] [--budget 1024] [--model-tasks 40]

The exact-match part builds each prompt as the completion pipeline does (1,024 tokens, up to
384 of them repository context: the defaults) and lets the embedded model write the line.
"""

from __future__ import annotations

import argparse
import ast
import functools
import os
import random
import re
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ouzel.indexer.text import split_lines

_IMPORT = re.compile(r"\s*(import|from)\s")
SKIP_PARTS = {
    "test",
    "tests",
    "idle_test",
    "site-packages",
    "__pycache__",
    "turtledemo",
    "_bundled",
    "lib2to3",
    "pydoc_data",
    "ensurepip",
    # Shadowed by setuptools' copy in virtualenvs (`_distutils_hack`): Jedi and Python
    # both resolve `distutils` there, so the stdlib definition is not the right answer.
    "distutils",
}


@dataclass(frozen=True)
class Task:
    path: Path  # the module the line was removed from
    line: int  # 0-based line that was removed
    removed: str  # the removed line's code (without its indentation)
    text: str  # the module with that line's code removed
    offset: int  # the cursor: where the line's code was
    name: str  # the name the line uses
    def_path: Path  # the module defining it
    def_line: int  # 0-based line of the definition
    def_text: str  # that line, stripped: what success looks for
    used_elsewhere: bool  # the name still appears in the file without the removed line


# --- tasks ----------------------------------------------------------------------------------


def module_files(corpus: Path) -> dict[str, Path]:
    """Module name → file, for every module worth reading in `corpus`.

    A package folder (one with `__init__.py`, e.g. site-packages/rich) names its modules
    from its parent (`rich.console`); any other folder (the stdlib) from itself.
    """
    modules: dict[str, Path] = {}
    base = corpus.parent if (corpus / "__init__.py").exists() else corpus
    for path in sorted(corpus.rglob("*.py")):
        relative = path.relative_to(base)
        if any(part in SKIP_PARTS or part.startswith("config-") for part in relative.parts):
            continue
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            modules[".".join(parts)] = path
    return modules


class TopLevel:
    """Top-level definitions (def, class, NAME = …) of each module, parsed once."""

    def __init__(self, modules: dict[str, Path]) -> None:
        self.modules = modules
        self._cache: dict[str, dict[str, int]] = {}

    def __call__(self, module: str) -> dict[str, int]:
        if module not in self._cache:
            self._cache[module] = self._parse(self.modules[module])
        return self._cache[module]

    @staticmethod
    def _parse(path: Path) -> dict[str, int]:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            return {}
        found: dict[str, int] = {}
        for node in tree.body:
            # The last binding wins, as at import time.
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found[node.name] = node.lineno - 1
            elif (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                found[node.targets[0].id] = node.lineno - 1
        return found


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def candidate_lines(
    module: str, path: Path, modules: dict[str, Path], top: TopLevel
) -> Iterator[tuple[int, str, str, int]]:
    """(line, name, defining module, definition line) for lines worth removing."""
    try:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    lines = text.splitlines()
    own = set(top(module))
    from_names: dict[str, tuple[str, str]] = {}
    aliases: dict[str, str] = {}
    import_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            import_lines.update(range(node.lineno - 1, node.end_lineno or node.lineno))
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name if alias.asname else alias.name.split(".")[0]
                if target in modules:
                    aliases[alias.asname or target] = target
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(module, path.name == "__init__.py", node)
            if base not in modules:
                continue
            for alias in node.names:
                if alias.name in top(base) and f"{base}.{alias.name}" not in modules:
                    from_names[alias.asname or alias.name] = (base, alias.name)
    one_line = {
        node.lineno - 1
        for node in ast.walk(tree)
        if isinstance(node, ast.stmt)
        and node.lineno == node.end_lineno
        and not isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Import | ast.ImportFrom)
    }
    for node in ast.walk(tree):
        target: tuple[str, str] | None = None
        if isinstance(node, ast.Name) and node.id in from_names and node.id not in own:
            target = from_names[node.id]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.value.id not in own
            and node.attr in top(aliases[node.value.id])
        ):
            target = (aliases[node.value.id], node.attr)
        if target is None or target[0] == module:
            continue
        line = node.lineno - 1
        if line not in one_line or line in import_lines:
            continue
        if 8 <= len(lines[line].strip()) <= 100:
            yield line, target[1], target[0], top(target[0])[target[1]]


def build_tasks(corpus: Path, count: int, seed: int) -> list[Task]:
    modules = module_files(corpus)
    top = TopLevel(modules)
    per_file: dict[str, list[tuple[int, str, str, int]]] = {}
    for module, path in modules.items():
        found = list(candidate_lines(module, path, modules, top))
        if found:
            per_file[module] = found
    rng = random.Random(seed)
    chosen = sorted(per_file)
    rng.shuffle(chosen)
    tasks: list[Task] = []
    for module in chosen[:count]:
        line, name, def_module, def_line = rng.choice(per_file[module])
        path = modules[module]
        text = path.read_text(encoding="utf-8")
        lines = split_lines(text)  # not str.splitlines: the stdlib has form feeds
        original = lines[line]
        indent = original[: len(original) - len(original.lstrip())]
        removed = original.strip()
        lines[line] = indent + "\n"
        offset = sum(len(row) for row in lines[:line]) + len(indent)
        def_path = modules[def_module]
        def_text = split_lines(def_path.read_text(encoding="utf-8"))[def_line].strip()
        remaining = "".join(lines)
        code_lines = [row for row in split_lines(remaining) if not _IMPORT.match(row)]
        used = re.search(rf"\b{re.escape(name)}\b", "".join(code_lines)) is not None
        tasks.append(
            Task(
                path,
                line,
                removed,
                remaining,
                offset,
                name,
                def_path,
                def_line,
                def_text,
                used,
            )
        )
    tasks.sort(key=lambda task: task.path)  # a session moving through the tree
    return tasks


def contains_definition(task: Task, parts: list[tuple[Path | None, str]]) -> bool:
    """A part taken from the defining file whose text holds the definition's first line."""
    return any(path == task.def_path and task.def_text in text for path, text in parts)


def why_missed(task: Task, table: object, parts: list[tuple[Path | None, str]]) -> str:
    """Why the definitions source missed `task`: what Jedi's import table says of the name."""
    sites = [
        site
        for dotted, found in getattr(table, "sites", {}).items()
        if dotted == task.name or dotted.endswith("." + task.name)
        for site in found
        if site.kind != "module"
    ]
    if table is None:
        return "no import table"
    if not sites:
        return "name not in the import table"
    if all(site.path != task.def_path for site in sites):
        suffixes = sorted({site.path.suffix or site.path.name for site in sites})
        return f"resolved to another file ({', '.join(suffixes)})"
    if any(path == task.def_path for path, _ in parts):
        return "defining file packed, not that line"
    return "resolved, but not packed"


# --- measuring ----------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - started) * 1000


STRATEGIES: dict[str, tuple[str, ...]] = {
    "definitions": ("definitions",),
    "bm25": ("bm25",),
    "recent": ("recent",),
    "combined": ("definitions", "bm25", "recent"),
}
INDEX_EXCLUDE = [f"{part}/" for part in sorted(SKIP_PARTS)] + ["config-*/"]


@dataclass
class Row:
    hits: list[bool] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)  # a new cursor position
    again_ms: list[float] = field(default_factory=list)  # the next keystroke there
    tokens: list[int] = field(default_factory=list)

    def recall(self, mask: list[bool] | None = None) -> float:
        chosen = [hit for i, hit in enumerate(self.hits) if mask is None or mask[i]]
        return sum(chosen) / len(chosen) if chosen else float("nan")


class Bench:
    """One engine over the corpus (the workspace), as a session would hold it."""

    def __init__(self, corpus: Path, index_dir: Path) -> None:
        from ouzel.indexer.config import DEFAULT_SECRET_GLOBS, IndexConfig
        from ouzel.indexer.index import WorkspaceIndex
        from ouzel.server.features.context.engine import ContextEngine
        from ouzel.server.features.context.files import FileTexts, SecretGuard
        from ouzel.server.features.context.index_access import IndexRetrieval
        from ouzel.server.features.context.pack import Packer, comment_blocks
        from ouzel.server.features.context.python_defs import JediService, default_sys_paths
        from ouzel.server.features.context.recent import RecentBuffer
        from ouzel.server.features.context.tokens import counter_for_model, embedded_model_path

        self.root = corpus
        config = IndexConfig(index_dir=index_dir, watch=False, exclude=INDEX_EXCLUDE)
        started = time.perf_counter()
        self.index = WorkspaceIndex(corpus, config)
        self.index_summary = self.index.update_all()
        self.index_s = time.perf_counter() - started
        retrieval = IndexRetrieval(self.index)
        self.counter = counter_for_model(embedded_model_path())
        self.jedi = JediService()
        self.recent = RecentBuffer()
        self.engine = ContextEngine(
            self.jedi,
            self.recent,
            Packer(self.counter, comment_blocks("#")),
            SecretGuard([corpus], DEFAULT_SECRET_GLOBS),
            FileTexts(),
            retrieval_for=lambda root: retrieval,
            sys_paths=default_sys_paths(),
        )

    def close(self) -> None:
        self.jedi.close()
        self.index.close()

    def open(self, task: Task) -> float:
        """The editor opens the file: the recent buffer notes it, Jedi builds its table."""
        from ouzel.server.documents import Document

        uri = task.path.as_uri()
        self.recent.on_document("open", Document.create(uri, "python", 1, task.text), None)
        started = time.perf_counter()
        self.engine.prepare(uri, task.path, task.text, 1, self.root)
        self.jedi.analyze(uri, task.path, task.text, 1, self.root).result()
        return (time.perf_counter() - started) * 1000

    def request(self, task: Task):  # type: ignore[no-untyped-def]
        from ouzel.server.features.context.model import ContextRequest

        return ContextRequest(
            task.path.as_uri(), task.path, "python", 1, task.text, task.offset, self.root
        )

    def window(self, task: Task, budget: int) -> tuple[str, str, int, int]:
        from ouzel.indexer.text import line_starts
        from ouzel.inference.templates import fit_window

        prefix_budget = int(budget * 0.8)
        window = fit_window(
            task.text,
            line_starts(task.text),
            task.offset,
            prefix_budget,
            budget - prefix_budget,
            self.counter.count,
        )
        return window.prefix, window.suffix, window.first_line, window.last_line

    def gather(self, task: Task, strategies: tuple[str, ...], budget: int, window: tuple[int, int]):  # type: ignore[no-untyped-def]
        from ouzel.server.features.context.engine import EngineOptions

        options = EngineOptions(budget=budget, jedi_cap_s=0.02, strategies=strategies)
        options.definitions_share = getattr(self, "share", options.definitions_share)
        return self.engine.gather(self.request(task), options, window)

    def prompts(self, task: Task, window: tuple[int, int]) -> Prompts:
        """The shipping configuration: a 1,024-token prompt with up to 384 of context."""
        from ouzel.indexer.text import line_starts
        from ouzel.inference.templates import ContextSnippet
        from ouzel.server.features.completion_prompt import build_prompt
        from ouzel.server.features.context.engine import EngineOptions
        from ouzel.server.features.context.service import model_format
        from ouzel.server.settings import Settings

        settings = Settings()
        form = model_format(settings)
        options = EngineOptions(
            budget=settings.context.budget_tokens,
            jedi_cap_s=settings.context.jedi_timeout_ms / 1000,
            strategies=STRATEGIES["combined"],
        )
        result = self.engine.gather(self.request(task), options, window)
        snippets = [ContextSnippet(p.display_path, p.text, p.source) for p in result.parts]
        path = task.path.relative_to(self.root).as_posix()

        def prompt(chosen: list[ContextSnippet]) -> str:
            plan = build_prompt(
                task.text,
                line_starts(task.text),
                task.offset,
                path=path,
                language_id="python",
                template=form.template,
                count_tokens=self.counter.count,
                settings=settings.completion,
                snippets=chosen,
                snippet_budget=settings.context.budget_tokens,
            )
            assert plan is not None, "an empty line in a block always gets a suggestion"
            return plan.request.prompt

        return Prompts(task, prompt([]), prompt(snippets))

    def leave(self, task: Task) -> None:
        self.recent.touch(task.path.as_uri(), task.path, task.line, task.text.count("\n") + 1)


@dataclass
class Prompts:
    """One task's prompts as the completion pipeline builds them, without and with context."""

    task: Task
    without: str
    with_context: str


def run_recall(
    tasks: list[Task], bench: Bench, budget: int, model_tasks: int
) -> tuple[dict[str, Row], list[float], list[Prompts]]:
    rows = {name: Row() for name in ["window", *STRATEGIES]}
    misses: dict[str, list[Task]] = {}  # why the definitions source missed, with the tasks
    analysis_ms: list[float] = []
    prompts: list[Prompts] = []
    for number, task in enumerate(tasks, 1):
        analysis_ms.append(bench.open(task))
        prefix, suffix, _, _ = bench.window(task, budget)
        rows["window"].hits.append(task.def_text in prefix + suffix)
        # The lines the prompt shows around the cursor (the shipping split of 1,024 tokens).
        _, _, first, last = bench.window(task, 1024 - 384)
        for name, strategies in STRATEGIES.items():
            gather = functools.partial(bench.gather, task, strategies, budget, (first, last))
            # The first request at this cursor: Jedi's look-ups at the cursor start now.
            bench.jedi.forget(task.path.as_uri(), keep_table=True)
            bench.engine.forget_searches()  # nor an index answer from the previous strategy
            _, elapsed = timed(gather)
            # The next keystroke, once they are in: the steady state, and what recall counts
            # (so it does not depend on how busy the machine was).
            bench.jedi.idle()
            result, again = timed(gather)
            row = rows[name]
            row.first_ms.append(elapsed)
            row.again_ms.append(again)
            row.tokens.append(result.tokens)
            parts = [(p.path, p.text) for p in result.parts]
            row.hits.append(contains_definition(task, parts))
            if name == "definitions" and not row.hits[-1]:
                reason = why_missed(task, bench.jedi.table(task.path.as_uri()), parts)
                misses.setdefault(reason, []).append(task)
        if number <= model_tasks:
            prompts.append(bench.prompts(task, (first, last)))
        bench.leave(task)
        if number % 25 == 0:
            print(f"  {number}/{len(tasks)}", file=sys.stderr)
    return rows, analysis_ms, prompts, misses


def print_misses(misses: dict[str, list[Task]], root: Path, examples: int) -> None:
    if not misses:
        return
    print("\nwhy the definitions source missed (Jedi's import table for the name)")
    for reason, tasks in sorted(misses.items(), key=lambda item: -len(item[1])):
        print(f"  {len(tasks):>4}  {reason}")
        for task in tasks[:examples]:
            where = task.path.relative_to(root.parent if root.parent in task.path.parents else root)
            print(f"          {where}:{task.line + 1}  {task.removed[:60]!r} ({task.name})")


def resolve_corpus(value: str) -> Path:
    """A folder, or the name of an importable package (its folder in site-packages)."""
    import importlib.util

    path = Path(value).expanduser()
    if path.is_dir():
        return path.resolve()
    spec = importlib.util.find_spec(value)
    if spec is None or not spec.submodule_search_locations:
        raise argparse.ArgumentTypeError(f"{value!r} is neither a folder nor a package")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def print_recall(tasks: list[Task], rows: dict[str, Row], budget: int) -> None:
    elsewhere = [task.used_elsewhere for task in tasks]
    only_here = [not used for used in elsewhere]
    print(f"\nrecall at a {budget}-token budget, {len(tasks)} tasks")
    print(
        f"{'strategy':<13}{'recall':>7}{'used elsewhere':>16}{'only there':>12}"
        f"{'first p50':>11}{'p95':>7}{'next p50':>10}{'p95':>7}{'tokens':>8}"
    )
    print(
        f"{'':<13}{'':>7}{f'({sum(elsewhere)})':>16}{f'({sum(only_here)})':>12}{'ms':>11}{'ms':>7}{'ms':>10}{'ms':>7}"
    )
    for name, row in rows.items():
        timing = (
            f"{percentile(row.first_ms, 0.5):>11.1f}{percentile(row.first_ms, 0.95):>7.1f}"
            f"{percentile(row.again_ms, 0.5):>10.1f}{percentile(row.again_ms, 0.95):>7.1f}"
            f"{statistics.mean(row.tokens):>8.0f}"
            if row.first_ms
            else f"{'-':>11}{'-':>7}{'-':>10}{'-':>7}{'-':>8}"
        )
        print(
            f"{name:<13}{row.recall():>7.3f}{row.recall(elsewhere):>16.3f}"
            f"{row.recall(only_here):>12.3f}{timing}"
        )


def exact_match(prompts: list[Prompts], max_tokens: int = 48) -> None:
    """The embedded model (greedy) writes the removed line, without and with the context."""
    from llama_cpp import Llama

    from ouzel.server.features.context.tokens import embedded_model_path

    model_path = embedded_model_path()
    if model_path is None or not prompts:
        print("\nexact match: skipped (no embedded model, or --model-tasks 0)")
        return
    llm = Llama(str(model_path), n_ctx=2048, n_threads=2, verbose=False)
    hits = {"without": 0, "with context": 0}
    tokens = {"without": 0, "with context": 0}
    started = time.perf_counter()
    for item in prompts:
        for name, prompt in (("without", item.without), ("with context", item.with_context)):
            out = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, stop=["\n"])
            written = str(out["choices"][0]["text"]).split("\n")[0].strip()  # type: ignore[index]
            hits[name] += written == item.task.removed.strip()
            tokens[name] += int(out["usage"]["prompt_tokens"])  # type: ignore[index]
    seconds = time.perf_counter() - started
    count = len(prompts)
    print(f"\nexact match of the removed line, embedded model (greedy), first {count} tasks")
    print(f"{'prompt':<16}{'exact match':>12}{'prompt tokens':>15}")
    for name in hits:
        print(f"{name:<16}{hits[name] / count:>12.3f}{tokens[name] / count:>15.0f}")
    print(f"({seconds:.0f} s for {2 * count} generations)")
    llm.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--budget", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--corpus",
        "--stdlib",
        dest="corpus",
        type=resolve_corpus,
        default=Path(sysconfig.get_paths()["stdlib"]),
        metavar="PATH",
        help="the workspace the tasks come from: a folder or an installed package's name "
        "(default: the running interpreter's standard library)",
    )
    parser.add_argument(
        "--index-dir", type=Path, help="keep the corpus index here (default: a temporary folder)"
    )
    parser.add_argument(
        "--examples", type=int, default=2, help="tasks shown for each reason of a miss"
    )
    parser.add_argument(
        "--model-tasks",
        type=int,
        default=40,
        help="tasks whose removed line the embedded model writes (0: skip the model)",
    )
    args = parser.parse_args(argv)
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    started = time.perf_counter()
    tasks = build_tasks(args.corpus, args.tasks, args.seed)
    print(f"{len(tasks)} tasks from {args.corpus} in {time.perf_counter() - started:.1f} s")
    index_dir = args.index_dir or Path(tempfile.mkdtemp(prefix="ouzel-context-recall-"))
    bench = Bench(args.corpus, index_dir)
    status = bench.index.status()
    print(
        f"index: {status['files_indexed']} files, {status['chunks']} chunks, "
        f"{status['symbols']} symbols, brought up to date in {bench.index_s:.1f} s "
        f"(without {', '.join(sorted(SKIP_PARTS))})"
    )
    try:
        rows, analysis_ms, prompts, misses = run_recall(tasks, bench, args.budget, args.model_tasks)
    finally:
        bench.close()
        if args.index_dir is None:
            shutil.rmtree(index_dir, ignore_errors=True)
    print_recall(tasks, rows, args.budget)
    print_misses(misses, args.corpus, args.examples)
    print(
        f"\nJedi import table when a file opens (background, not in the request): "
        f"p50 {percentile(analysis_ms, 0.5):.0f} ms, p95 {percentile(analysis_ms, 0.95):.0f} ms"
    )
    exact_match(prompts)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
