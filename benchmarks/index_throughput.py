"""Index throughput: a cold index of the CPython standard library next to universal-ctags.

The standard library of the running Python (without site-packages and __pycache__) is
copied to a temporary folder, read once so both tools start from a warm page cache, then:

1. `ctags -R` over the copy (wall time, tags), and a cold `WorkspaceIndex.update_all` over
   the same copy (wall time, lines/s, symbols, chunks, peak RSS of the process and its
   parser processes together, sampled every 20 ms), in the same run, one after the other;
2. saved-to-searchable: with the index's scheduler and file watcher running (as in the
   server), a new function is appended to a file and saved, and the time until
   `search_symbols` (what `ouzel search` and `workspace/symbol` call) finds it is taken,
   over N edits (p50/p95);
3. search latency at that size: fuzzy symbol queries and BM25 chunk queries (p50/p95).

    python benchmarks/index_throughput.py [--tree DIR] [--workers 2] [--edits 20] [--json]

The machine is shared: the load average at the start is printed, and the ctags ratio,
measured side by side, is the figure that travels best.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGETS = {"cold_s": 10.0, "saved_p95_ms": 300.0, "search_p95_ms": 20.0, "rss_mb": 500.0}
SYMBOL_QUERIES = [
    "urlopen",
    "TextIOWrapper",
    "HTTPConn",
    "gcd",
    "parse_args",
    "Dict",
    "getaddrinfo",
    "tgz",
    "SafeConfigParser",
    "json loads",
]
CHUNK_QUERIES = [
    "asyncio gather tasks",
    "open file encoding errors",
    "socket timeout connect",
    "parse http headers",
    "thread lock acquire release",
    "decimal context precision",
]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


class RssSampler:
    """Peak resident memory of this process and its descendants, summed, sampled."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak_total = 0
        self.peak_main = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    @staticmethod
    def _children(pid: int) -> list[int]:
        found = []
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as children:
                    found.extend(int(c) for c in children.read().split())
        except OSError:
            pass
        return found

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            pending, total = [me], 0
            while pending:
                pid = pending.pop()
                total += self._rss(pid)
                pending.extend(self._children(pid))
            self.peak_total = max(self.peak_total, total)
            self.peak_main = max(self.peak_main, self._rss(me))
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(
        source,
        target,
        ignore=shutil.ignore_patterns("site-packages", "__pycache__", "*.pyc"),
        symlinks=True,
    )


def warm(tree: Path) -> tuple[int, int]:
    files = size = 0
    for path in tree.rglob("*"):
        if path.is_file() and not path.is_symlink():
            size += len(path.read_bytes())
            files += 1
    return files, size


@dataclass
class Results:
    load_average: float = 0.0
    files: int = 0
    bytes: int = 0
    ctags_s: float = 0.0
    ctags_cpu_s: float = 0.0
    ctags_tags: int = 0
    cold_s: float = 0.0
    cold_cpu_s: float = 0.0
    lines: int = 0
    symbols: int = 0
    chunks: int = 0
    indexed_files: int = 0
    rss_total_mb: float = 0.0
    rss_main_mb: float = 0.0
    saved_ms: list[float] = field(default_factory=list)
    symbol_ms: list[float] = field(default_factory=list)
    chunk_ms: list[float] = field(default_factory=list)
    index_mb: float = 0.0


def cpu_seconds() -> float:
    """User + system time of this process (all threads) and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_ctags(tree: Path, tags: Path) -> tuple[float, float, int]:
    started, cpu = time.perf_counter(), cpu_seconds()
    subprocess.run(["ctags", "-R", "-f", str(tags), str(tree)], check=True, capture_output=True)
    elapsed, used = time.perf_counter() - started, cpu_seconds() - cpu
    count = sum(
        1 for line in tags.read_text(errors="replace").splitlines() if not line.startswith("!_")
    )
    return elapsed, used, count


def timed(call: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def measure(tree: Path, work: Path, workers: int, edits: int) -> Results:
    from ouzel.indexer.config import IndexConfig
    from ouzel.indexer.index import WorkspaceIndex
    from ouzel.indexer.scheduler import IndexScheduler
    from ouzel.indexer.search import search_chunks, search_symbols

    results = Results(load_average=os.getloadavg()[0])
    results.files, results.bytes = warm(tree)
    results.ctags_s, results.ctags_cpu_s, results.ctags_tags = run_ctags(tree, work / "tags")
    config = IndexConfig(index_dir=work / "index", workers=workers, watch_debounce_ms=50)

    with RssSampler() as rss:
        started, cpu = time.perf_counter(), cpu_seconds()
        index = WorkspaceIndex(tree, config)
        summary = index.update_all()  # shuts its parser processes down: their CPU counts
        results.cold_s = time.perf_counter() - started
        results.cold_cpu_s = cpu_seconds() - cpu
    results.rss_total_mb = rss.peak_total / 1e6
    results.rss_main_mb = rss.peak_main / 1e6
    results.lines, results.symbols, results.chunks = summary.lines, summary.symbols, summary.chunks
    results.indexed_files = summary.indexed
    index.close()

    # Saved-to-searchable, through the watcher and scheduler as in the server.
    scheduler = IndexScheduler(lambda: WorkspaceIndex(tree, config), tree)
    scheduler.start(full=True)
    assert scheduler.wait_idle(300), "the catch-up update did not finish"
    live = scheduler.index
    assert live is not None
    targets = sorted(p for p in tree.rglob("*.py") if p.stat().st_size < 40_000)[:edits]
    for number, path in enumerate(targets):
        name = f"ouzel_bench_symbol_{number}"
        with path.open("a") as handle:
            handle.write(f"\n\ndef {name}():\n    return {number}\n")
        saved = time.perf_counter()
        while not any(hit.name == name for hit in search_symbols(live, name, limit=3)):
            if time.perf_counter() - saved > 30:
                raise TimeoutError(f"{name} never became searchable")
            time.sleep(0.002)
        results.saved_ms.append((time.perf_counter() - saved) * 1000)
        scheduler.wait_idle(30)
        time.sleep(0.1)
    for query in SYMBOL_QUERIES:
        results.symbol_ms += timed(lambda q=query: search_symbols(live, q, limit=20), 10)
    for query in CHUNK_QUERIES:
        results.chunk_ms += timed(lambda q=query: search_chunks(live, q, limit=10), 10)
    scheduler.stop()
    results.index_mb = (
        sum(p.stat().st_size for p in (work / "index").rglob("*") if p.is_file()) / 1e6
    )
    return results


def report(results: Results, workers: int) -> dict[str, Any]:
    search = results.symbol_ms + results.chunk_ms
    return {
        "load_average_1min": round(results.load_average, 2),
        "workers": workers,
        "tree_files": results.files,
        "tree_mb": round(results.bytes / 1e6, 1),
        "indexed_files": results.indexed_files,
        "lines": results.lines,
        "ctags_s": round(results.ctags_s, 2),
        "ctags_cpu_s": round(results.ctags_cpu_s, 2),
        "ctags_tags": results.ctags_tags,
        "cold_s": round(results.cold_s, 2),
        "cold_cpu_s": round(results.cold_cpu_s, 2),
        "cold_vs_ctags": round(results.cold_s / results.ctags_s, 1) if results.ctags_s else None,
        "lines_per_s": round(results.lines / results.cold_s) if results.cold_s else 0,
        "symbols": results.symbols,
        "chunks": results.chunks,
        "rss_peak_mb_with_parsers": round(results.rss_total_mb),
        "rss_peak_mb_main": round(results.rss_main_mb),
        "index_mb_on_disk": round(results.index_mb, 1),
        "saved_p50_ms": round(percentile(results.saved_ms, 0.5), 1),
        "saved_p95_ms": round(percentile(results.saved_ms, 0.95), 1),
        "symbol_search_p50_ms": round(percentile(results.symbol_ms, 0.5), 1),
        "symbol_search_p95_ms": round(percentile(results.symbol_ms, 0.95), 1),
        "chunk_search_p50_ms": round(percentile(results.chunk_ms, 0.5), 1),
        "chunk_search_p95_ms": round(percentile(results.chunk_ms, 0.95), 1),
        "search_p95_ms": round(percentile(search, 0.95), 1),
        "search_mean_ms": round(statistics.fmean(search), 1),
    }


def print_table(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def verdict(value: float, limit: float) -> str:
        return "[green]yes[/green]" if value <= limit else "[red]no[/red]"

    table = Table(title="ouzel index throughput (CPython standard library)")
    for column in ("measure", "ouzel", "ctags -R", "target", "met"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    table.add_row(
        "cold index, wall",
        f"{data['cold_s']} s",
        f"{data['ctags_s']} s",
        f"<= {TARGETS['cold_s']:g} s",
        verdict(data["cold_s"], TARGETS["cold_s"]),
    )
    table.add_row(
        "cold index, CPU (all processes)",
        f"{data['cold_cpu_s']} s",
        f"{data['ctags_cpu_s']} s",
        "",
        "",
    )
    table.add_row("ouzel / ctags (wall)", f"{data['cold_vs_ctags']}x", "1x", "", "")
    table.add_row("lines/s", f"{data['lines_per_s']:,}", "", "", "")
    table.add_row("symbols / tags", f"{data['symbols']:,}", f"{data['ctags_tags']:,}", "", "")
    table.add_row("chunks", f"{data['chunks']:,}", "", "", "")
    table.add_row(
        "peak RSS (with parsers)",
        f"{data['rss_peak_mb_with_parsers']} MB",
        "",
        f"<= {TARGETS['rss_mb']:g} MB",
        verdict(data["rss_peak_mb_with_parsers"], TARGETS["rss_mb"]),
    )
    table.add_row("peak RSS (main process)", f"{data['rss_peak_mb_main']} MB", "", "", "")
    table.add_row(
        "saved → searchable p50 / p95",
        f"{data['saved_p50_ms']} / {data['saved_p95_ms']} ms",
        "",
        f"p95 <= {TARGETS['saved_p95_ms']:g} ms",
        verdict(data["saved_p95_ms"], TARGETS["saved_p95_ms"]),
    )
    table.add_row(
        "symbol search p50 / p95",
        f"{data['symbol_search_p50_ms']} / {data['symbol_search_p95_ms']} ms",
        "",
        "",
        "",
    )
    table.add_row(
        "chunk search p50 / p95",
        f"{data['chunk_search_p50_ms']} / {data['chunk_search_p95_ms']} ms",
        "",
        "",
        "",
    )
    table.add_row(
        "all searches p95",
        f"{data['search_p95_ms']} ms",
        "",
        f"<= {TARGETS['search_p95_ms']:g} ms",
        verdict(data["search_p95_ms"], TARGETS["search_p95_ms"]),
    )
    table.add_row("index on disk", f"{data['index_mb_on_disk']} MB", "", "", "")
    console = Console()
    console.print(table)
    console.print(
        f"{data['indexed_files']} files indexed of {data['tree_files']} ({data['tree_mb']} MB, "
        f"{data['lines']:,} lines); {data['workers']} parser processes; "
        f"load average at start {data['load_average_1min']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, help="tree to index (default: the stdlib)")
    parser.add_argument("--workers", type=int, default=2, help="parser processes (default 2)")
    parser.add_argument("--edits", type=int, default=20, help="saves to time (default 20)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    if shutil.which("ctags") is None:
        parser.error("universal-ctags (`ctags`) is needed for the side-by-side figure")
    source = args.tree or Path(sysconfig.get_paths()["stdlib"])
    with tempfile.TemporaryDirectory(prefix="ouzel-bench-") as scratch:
        work = Path(scratch)
        tree = work / "tree"
        copy_tree(source, tree)
        data = report(measure(tree, work, args.workers, args.edits), args.workers)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_table(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
