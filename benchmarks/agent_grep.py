"""How fast is the agent's grep tool on a million lines? The standard library, side by side
with GNU grep.

The agent's grep walks by directory descriptor (no symlinks followed), applies the ignore
and secret rules, and searches each file with Python's `re`; GNU grep (`grep -rnE`) is the
yardstick, run on the same folder in the same run.

    python benchmarks/agent_grep.py [--root /usr/lib/python3.11] [--repeat 3]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sysconfig
import time
from pathlib import Path

from ouzel.inference.types import CancelToken
from ouzel.server.agent.sandbox import Sandbox
from ouzel.server.agent.tools import grep_files
from ouzel.server.settings import DEFAULT_SECRET_GLOBS

PATTERNS = [
    ("literal", "NotImplementedError"),
    ("word", r"\bdef __init__\b"),
    ("alternation", r"(TODO|FIXME|XXX)"),
    ("rare", r"zzz_no_such_name_zzz"),
]


def count_lines(root: Path) -> tuple[int, int]:
    files = lines = 0
    for path in root.rglob("*.py"):
        if path.is_file() and not path.is_symlink():
            files += 1
            with path.open("rb") as handle:
                lines += sum(1 for _ in handle)
    return files, lines


def timed(run: object, repeat: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        count = run()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=sysconfig.get_paths()["stdlib"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-results", type=int, default=1_000_000)
    args = parser.parse_args()
    root = Path(args.root).resolve()
    sandbox = Sandbox([root], DEFAULT_SECRET_GLOBS, max_file_bytes=5_000_000)
    folder = sandbox.check_read(str(root), want_dir=True)
    files, lines = count_lines(root)
    gnu = shutil.which("grep")
    print(
        f"grep benchmark: {root} ({files} .py files, {lines:,} lines of .py; all files searched)\n"
    )
    print(f"{'pattern':12} {'ouzel s':>8} {'matches':>8} {'GNU s':>7} {'matches':>8} {'ratio':>6}")
    for label, pattern in PATTERNS:
        regex = re.compile(pattern, re.MULTILINE)

        def ours(regex: re.Pattern[str] = regex) -> int:
            hits, _ = grep_files(sandbox, folder, regex, None, args.max_results, CancelToken())
            return len(hits)

        ours_s, ours_n = timed(ours, args.repeat)
        if gnu:

            def theirs(pattern: str = pattern) -> int:
                done = subprocess.run(
                    [gnu, "-rnIE", "--exclude-dir=__pycache__", pattern, str(root)],
                    capture_output=True,
                    check=False,
                )
                return done.stdout.count(b"\n")

            gnu_s, gnu_n = timed(theirs, args.repeat)
            print(
                f"{label:12} {ours_s:>8.2f} {ours_n:>8} {gnu_s:>7.2f} {gnu_n:>8} "
                f"{ours_s / gnu_s if gnu_s else 0:>6.1f}"
            )
        else:
            print(f"{label:12} {ours_s:>8.2f} {ours_n:>8}")


if __name__ == "__main__":
    main()
