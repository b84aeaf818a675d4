"""Definitions of the names a Python file imports, found with Jedi.

Jedi is exact but slow for a keystroke path (parsing a 2,000-line module and the modules it
imports takes 0.1 to 3 s cold), so the work is split:

- In the background (on open and, debounced, after edits) an *import table* is built for
  the document: every imported name and every `alias.attr` chain the file uses, resolved
  with `Script.goto(follow_imports=True)` to a file and line. It points into other files,
  so an older table never carries this document's own old text.
- On a request, names near the cursor are looked up in that table (microseconds), names
  defined in the file itself are found in the request's own snapshot, and only the
  attribute chains at the cursor that the table cannot answer go to Jedi, with a time cap.

All Jedi calls run in one worker process (see `JediService`); projects and environments are
cached there per workspace root.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ouzel.indexer.extract import end_with_parent, release_stdio
from ouzel.server.features.context.window import NameUse

log = logging.getLogger("ouzel.context.jedi")

MAX_CHAIN = 3  # alias.attr.attr: deeper chains are rare and costly to resolve
MAX_GOTOS = 400  # per table; a file with more distinct imported names is cut here
CURSOR_JOB_CAP_S = 1.0  # a look-up at the cursor stops after this, waited for or not


@dataclass(frozen=True)
class DefinitionSite:
    """Where a name the file uses is defined."""

    dotted: str  # the name as the file uses it: "copyfile", "os.path.join"
    path: Path
    line: int  # 0-based line of the definition
    kind: str  # Jedi's type: function, class, statement, module, …


@dataclass
class ImportTable:
    """The resolved imports of one version of one document."""

    version: int
    sites: dict[str, list[DefinitionSite]] = field(default_factory=dict)
    usage_lines: dict[str, list[int]] = field(default_factory=dict)  # head name -> lines
    order: list[str] = field(default_factory=list)  # dotted names in file order
    elapsed_s: float = 0.0
    complete: bool = True  # False when the time cap cut the analysis short

    def lookup(self, dotted: str) -> list[DefinitionSite]:
        """Sites for the longest prefix of `dotted` the table knows (never a bare module)."""
        parts = dotted.split(".")
        for size in range(len(parts), 0, -1):
            found = self.sites.get(".".join(parts[:size]))
            if found:
                return [site for site in found if site.kind != "module"]
        return []

    def module_path(self, alias: str) -> Path | None:
        """The file of the module `alias` names in this file (`import re` → re/__init__.py)."""
        for site in self.sites.get(alias, []):
            if site.kind == "module":
                return site.path
        return None


# `def name`, `async def name`, `class name` at any depth; `name =` / `name: T =` at the top.
_DEFINITION = re.compile(
    r"^[ \t]*(?:async[ \t]+def|def|class)[ \t]+([A-Za-z_]\w*)|^([A-Za-z_]\w*)[ \t]*(?::[^=\n]*)?=(?!=)",
    re.MULTILINE,
)


def local_definitions(text: str) -> dict[str, list[int]]:
    """0-based lines defining each name in `text`, found in one pass (no parse needed)."""
    found: dict[str, list[int]] = {}
    line = 0
    position = 0
    for match in _DEFINITION.finditer(text):
        line += text.count("\n", position, match.start())
        position = match.start()
        found.setdefault(match.group(1) or match.group(2), []).append(line)
    return found


def _iter_imports(node: Any) -> Iterator[Any]:
    if node.type in ("import_name", "import_from"):
        yield node
        return
    for child in getattr(node, "children", ()):
        yield from _iter_imports(child)


def _chains(leaf: Any) -> Iterator[tuple[str, Any]]:
    """`alias`, `alias.a`, `alias.a.b` starting at a use of `alias`, with each last leaf."""
    dotted = leaf.value
    current = leaf
    for _ in range(MAX_CHAIN - 1):
        dot = current.get_next_leaf()
        if dot is None or dot.type != "operator" or dot.value != ".":
            return
        name = dot.get_next_leaf()
        if name is None or name.type != "name":
            return
        dotted = f"{dotted}.{name.value}"
        current = name
        yield dotted, current


def find_virtualenv(root: Path) -> Path | None:
    """The project's own virtualenv (so Jedi sees its dependencies), if there is one."""
    for name in (".venv", "venv", "env"):
        for python in ("bin/python", "Scripts/python.exe"):
            candidate = root / name / python
            if candidate.is_file():
                return root / name
    return None


class JediService:
    """Import tables and capped look-ups, in one Jedi worker process per ouzel process.

    A process, not a thread: Jedi is pure Python and would hold the GIL for seconds while
    it analyzes a file, stalling the event loop and every completion. The worker runs at a
    lower priority, keeps Jedi's caches warm between jobs, and is replaced if it crashes or
    overruns its hard time cap. Results (plain paths and lines) come back to this process,
    where tables and cursor answers are kept.
    """

    def __init__(self, analysis_cap_s: float = 5.0, hard_cap_s: float = 30.0) -> None:
        self.analysis_cap_s = analysis_cap_s
        self.hard_cap_s = hard_cap_s
        self._pool: ProcessPoolExecutor | None = None
        self._after = ThreadPoolExecutor(1, thread_name_prefix="ouzel-context-warm")
        self._tables: dict[str, ImportTable] = {}
        self._pending: dict[str, tuple[int, Future[ImportTable | None]]] = {}
        self._cursor_sites: dict[tuple[str, str], list[DefinitionSite]] = {}
        self._lock = threading.Lock()
        self._running: set[Future[Any]] = set()
        self._closed = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            _stop_pool(pool)
        self._after.shutdown(wait=False, cancel_futures=True)

    def idle(self, timeout: float = 60.0) -> None:
        """Wait until the jobs submitted so far have finished (tests, benchmarks)."""
        self._submit(_worker_ready).result(timeout)
        self._after.submit(lambda: None).result(timeout)

    # --- tables ---------------------------------------------------------------------------

    def table(self, uri: str) -> ImportTable | None:
        with self._lock:
            return self._tables.get(uri)

    def forget(self, uri: str, keep_table: bool = False) -> None:
        """Drop what is known about a document (a closed one; or only its cursor answers)."""
        with self._lock:
            if not keep_table:
                self._tables.pop(uri, None)
            for key in [key for key in self._cursor_sites if key[0] == uri]:
                del self._cursor_sites[key]

    def analyze(
        self,
        uri: str,
        path: Path | None,
        text: str,
        version: int,
        root: Path | None,
        after: Callable[[ImportTable], None] | None = None,
    ) -> Future[ImportTable | None]:
        """Build the import table for this version (one pending job per document).

        `after(table)` runs in this process once the table is in (to warm caches); the
        returned future completes after it.
        """
        result: Future[ImportTable | None] = Future()
        with self._lock:
            pending = self._pending.get(uri)
            if pending is not None and pending[0] == version:
                return pending[1]
            table = self._tables.get(uri)
            if self._closed or (table is not None and table.version == version):
                result.set_result(table if not self._closed else None)
                return result
            self._pending[uri] = (version, result)
        job = self._submit(_worker_import_table, path, text, root, self.analysis_cap_s)

        def finished(job: Future[Any]) -> None:
            table = (
                None if self._closed else _job_result(job, f"Jedi could not analyze {path or uri}")
            )
            with self._lock:
                if self._pending.get(uri, (None,))[0] == version:
                    del self._pending[uri]
                if isinstance(table, ImportTable):
                    table.version = version
                    known = self._tables.get(uri)
                    if known is None or known.version <= version:
                        self._tables[uri] = table
            if not isinstance(table, ImportTable):
                result.set_result(None)
                return
            log.debug(
                "import table of %s v%d: %d names in %.0f ms%s",
                path or uri,
                version,
                len(table.sites),
                table.elapsed_s * 1000,
                "" if table.complete else " (cut short)",
            )
            self._run_after(after, table, result)

        job.add_done_callback(finished)
        return result

    def _run_after(
        self,
        after: Callable[[ImportTable], None] | None,
        table: ImportTable,
        result: Future[ImportTable | None],
    ) -> None:
        def run() -> None:
            try:
                if after is not None:
                    after(table)
            except Exception:
                log.exception("warming the context caches failed")
            finally:
                result.set_result(table)

        try:
            job = self._after.submit(run)
        except RuntimeError:  # shut down
            result.set_result(table)
            return
        with self._lock:
            self._running.add(job)
        job.add_done_callback(self._finished)

    # --- look-ups at the cursor -----------------------------------------------------------

    def known_at_cursor(self, uri: str, dotted: str) -> list[DefinitionSite] | None:
        """What an earlier cursor look-up in this document found for `dotted`, if any."""
        with self._lock:
            return self._cursor_sites.get((uri, dotted))

    def goto_many(
        self,
        uri: str,
        path: Path | None,
        text: str,
        root: Path | None,
        uses: list[NameUse],
        cap_s: float = CURSOR_JOB_CAP_S,
    ) -> Future[list[DefinitionSite]]:
        """Resolve `uses` (positions in `text`) with Jedi, stopping after `cap_s`.

        Results are remembered per document and name (`known_at_cursor`): a request that
        stopped waiting still leaves them for the next keystroke.
        """
        result: Future[list[DefinitionSite]] = Future()
        if self._closed:
            result.set_result([])
            return result
        job = self._submit(_worker_goto, path, text, root, uses, cap_s)

        def finished(job: Future[Any]) -> None:
            answers = (
                None if self._closed else _job_result(job, "Jedi look-up at the cursor failed")
            )
            answers = answers or []
            found: list[DefinitionSite] = []
            with self._lock:
                for dotted, sites in answers:
                    self._cursor_sites[(uri, dotted)] = sites
                    found.extend(sites)
                while len(self._cursor_sites) > 1024:
                    self._cursor_sites.pop(next(iter(self._cursor_sites)))
            result.set_result(found)

        job.add_done_callback(finished)
        return result

    # --- the worker -----------------------------------------------------------------------

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        with self._lock:
            if self._closed:
                failed: Future[Any] = Future()
                failed.set_exception(RuntimeError("the Jedi worker is closed"))
                return failed
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_init,
                    initargs=(os.getpid(),),
                )
            pool = self._pool
        try:
            job = pool.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError) as exc:
            log.warning("the Jedi worker stopped (%s); starting a new one", exc)
            self._replace(pool)
            failed = Future()
            failed.set_exception(exc)
            return failed
        watchdog = threading.Timer(self.hard_cap_s, self._overrun, (pool, job))
        watchdog.daemon = True
        watchdog.start()
        job.add_done_callback(lambda _: watchdog.cancel())
        with self._lock:
            self._running.add(job)
        job.add_done_callback(self._finished)
        return job

    def _finished(self, job: Future[Any]) -> None:
        with self._lock:
            self._running.discard(job)

    def busy(self) -> int:
        """Jobs submitted and not finished yet, the warming after an analysis included
        (for `ouzel/status`)."""
        with self._lock:
            return len(self._running)

    def _overrun(self, pool: ProcessPoolExecutor, job: Future[Any]) -> None:
        if not job.done():
            log.warning("a Jedi job ran over %.0f s; restarting the worker", self.hard_cap_s)
            self._replace(pool)

    def _replace(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        _stop_pool(pool)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a worker pool now, running job or not."""
    # ProcessPoolExecutor has no public way to end a running job (3.14 adds
    # terminate_workers); its process table is the only handle on the worker.
    for process in list(getattr(pool, "_processes", {}).values()):
        try:
            process.terminate()
        except Exception:  # already gone
            pass
    pool.shutdown(wait=False, cancel_futures=True)


def _job_result(job: Future[Any], failure: str) -> Any:
    if job.cancelled():
        return None
    error = job.exception()
    if error is not None:
        log.warning("%s: %s", failure, error)
        return None
    return job.result()


# --- in the worker process ------------------------------------------------------------------

_PROJECTS: dict[Path | None, tuple[Any, Any]] = {}


def _worker_init(parent_pid: int | None = None) -> None:
    """Keep the worker polite: lower priority, nothing printed on or held of the LSP
    stream (an editor waits for every holder of it to let go after a server is killed),
    and gone with its parent, also after kill -9."""
    release_stdio()
    end_with_parent(parent_pid)
    try:
        os.nice(10)
    except (AttributeError, OSError):  # Windows, or not allowed
        pass


def _worker_ready() -> bool:
    import jedi  # noqa: F401  (importing is the slow part of starting)

    return True


def _worker_import_table(
    path: Path | None, text: str, root: Path | None, cap_s: float
) -> ImportTable:
    return build_import_table(_script(text, path, root), text, time.monotonic() + cap_s)


def _worker_goto(
    path: Path | None, text: str, root: Path | None, uses: list[NameUse], cap_s: float
) -> list[tuple[str, list[DefinitionSite]]]:
    deadline = time.monotonic() + cap_s
    script = _script(text, path, root)
    answers: list[tuple[str, list[DefinitionSite]]] = []
    for use in uses:
        if time.monotonic() > deadline:
            break
        column = use.column + len(use.dotted) - 1  # on the chain's last name
        answers.append((use.dotted, _goto(script, use.line + 1, column, use.dotted)))
    return answers


def _script(text: str, path: Path | None, root: Path | None) -> Any:
    import jedi

    project, environment = _project(root)
    return jedi.Script(text, path=path, project=project, environment=environment)


def _project(root: Path | None) -> tuple[Any, Any]:
    """jedi.Project and environment per workspace root, made once per worker."""
    import jedi
    from jedi.api.environment import InterpreterEnvironment

    cached = _PROJECTS.get(root)
    if cached is not None:
        return cached
    environment: Any = None
    venv = find_virtualenv(root) if root is not None else None
    if venv is not None:
        try:
            environment = jedi.create_environment(str(venv), safe=False)
        except Exception as exc:
            log.warning("Jedi cannot use the virtualenv %s (%s)", venv, exc)
    if environment is None:
        # In the worker's own interpreter: code is parsed, never imported.
        environment = InterpreterEnvironment()
    project = jedi.Project(
        str(import_root(root or Path.cwd())), smart_sys_path=True, load_unsafe_extensions=False
    )
    _PROJECTS[root] = (project, environment)
    return project, environment


def import_root(root: Path) -> Path:
    """The folder Jedi puts first on its sys path for a workspace `root`.

    A package folder opened as the workspace (`pydantic/` itself, with `__init__.py`) is
    named from its parent by its own absolute imports (`from pydantic.fields import …`):
    from the root alone they would resolve to an installed copy of the package, or not at
    all. The parent, first on the path, makes them resolve to the workspace's files.
    """
    return root.parent if (root / "__init__.py").is_file() else root


def build_import_table(script: Any, text: str, deadline: float) -> ImportTable:
    """Resolve every imported name and each `alias.attr` chain the module uses."""
    import parso

    started = time.monotonic()
    module = parso.parse(text)
    table = ImportTable(version=-1)
    used = module.get_used_names()
    imported: dict[str, Any] = {}  # name -> its leaf in the import statement
    for statement in _iter_imports(module):
        for leaf in statement.get_defined_names():
            imported.setdefault(leaf.value, leaf)
    targets: list[tuple[str, Any]] = []
    for name, leaf in imported.items():
        targets.append((name, leaf))
        lines: list[int] = []
        seen_chains: set[str] = set()
        for use in used.get(name, []):
            if use is leaf:
                continue
            lines.append(use.start_pos[0] - 1)
            for dotted, last in _chains(use):
                if dotted not in seen_chains:
                    seen_chains.add(dotted)
                    targets.append((dotted, last))
        table.usage_lines[name] = lines
    for count, (dotted, leaf) in enumerate(targets):
        if time.monotonic() > deadline or count >= MAX_GOTOS:
            table.complete = False
            break
        line, column = leaf.start_pos
        sites = _goto(script, line, column, dotted)
        if sites:
            table.sites[dotted] = sites
            table.order.append(dotted)
    table.elapsed_s = time.monotonic() - started
    return table


def _goto(script: Any, line: int, column: int, dotted: str) -> list[DefinitionSite]:
    try:
        names = script.goto(line, column, follow_imports=True)
    except Exception as exc:  # Jedi raises on odd code; one name is not worth a failure
        log.debug("Jedi goto %s at %d:%d failed: %s", dotted, line, column, exc)
        return []
    sites: list[DefinitionSite] = []
    for name in names:
        module_path = name.module_path
        if module_path is None or name.line is None or name.in_builtin_module():
            continue
        sites.append(DefinitionSite(dotted, Path(module_path), name.line - 1, name.type))
    return sites


def default_sys_paths() -> list[Path]:
    """Import roots used to write short paths for files outside the workspace."""
    paths = [Path(p) for p in sys.path if p and os.path.isdir(p)]
    return sorted(paths, key=lambda p: len(str(p)), reverse=True)


def display_path(path: Path, root: Path | None, sys_paths: list[Path]) -> str:
    """The shortest honest path for a prompt: relative to the workspace or an import root."""
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    text = path.as_posix()
    for marker in ("/typeshed/stdlib/", "/typeshed/stubs/"):
        if marker in text:  # Jedi's bundled stubs: show the module's own path
            return text.split(marker, 1)[1]
    for base in sys_paths:
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return path.name
