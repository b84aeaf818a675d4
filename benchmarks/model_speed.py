"""What each installed local model costs here: disk, memory, load time, prompt evaluation
and generation speed, with ouzel's own llama.cpp options (`LlamaOptions()`: n_ctx 4096,
half the cores).

Each model runs in a fresh subprocess, so its resident memory is its own. The prompt is a
real source file (ouzel's `server/convert.py`, ~`--prompt-tokens` tokens), evaluated from an
empty KV cache; generation is greedy, `--gen-tokens` tokens after it. Every model gets the
same prompt, measured `--runs` times (the best run is shown: the machine is shared).

    python benchmarks/model_speed.py [--models NAME ...] [--prompt-tokens 512] [--gen-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "server" / "convert.py"


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(name: str, prompt_tokens: int, gen_tokens: int, runs: int) -> dict[str, Any]:
    """Load `name` in this process and time it (run in a child process by `main`)."""
    from ouzel.inference import catalog
    from ouzel.inference.llama_cpp import LlamaOptions, open_llama

    path = catalog.model_path(name)
    before = rss_bytes()
    started = time.perf_counter()
    llm = open_llama(path, LlamaOptions())
    load_s = time.perf_counter() - started
    tokens = llm.tokenize(SOURCE.read_bytes(), add_bos=False)[:prompt_tokens]
    best_prompt, best_gen = 0.0, 0.0
    for _ in range(runs):
        llm.reset()
        llm._ctx.kv_cache_clear()  # no reuse between runs: a cold prompt every time
        started = time.perf_counter()
        llm.eval(tokens)
        best_prompt = max(best_prompt, len(tokens) / (time.perf_counter() - started))
        generated = 0
        started = time.perf_counter()
        for _token in llm.generate([], temp=0.0, reset=False):
            generated += 1
            if generated >= gen_tokens:
                break
        best_gen = max(best_gen, generated / (time.perf_counter() - started))
    return {
        "name": name,
        "disk": path.stat().st_size,
        "rss": rss_bytes() - before,
        "load_s": load_s,
        "prompt_tokens": len(tokens),
        "prompt_tps": best_prompt,
        "gen_tps": best_gen,
        "threads": LlamaOptions().kwargs()["n_threads"],
    }


def main() -> int:
    from ouzel.inference import catalog

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(catalog.MODELS))
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = measure(args.child, args.prompt_tokens, args.gen_tokens, args.runs)
        print(json.dumps(result))
        return 0
    rows = []
    for name in args.models:
        if not catalog.is_installed(name):
            print(f"skipping {name}: not installed (`ouzel models install {name}`)")
            continue
        child = [sys.executable, __file__, "--child", name]
        child += ["--prompt-tokens", str(args.prompt_tokens), "--gen-tokens", str(args.gen_tokens)]
        child += ["--runs", str(args.runs)]
        out = subprocess.run(child, capture_output=True, text=True, check=True, timeout=900)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print_table(rows)
    return 0


def print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="local models on this machine (ouzel's llama.cpp options)")
    for column in ("model", "disk", "RAM (RSS)", "load", "prompt eval", "generation", "threads"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for row in rows:
        table.add_row(
            row["name"],
            f"{row['disk'] / 1e6:,.0f} MB",
            f"{row['rss'] / 1e6:,.0f} MB",
            f"{row['load_s']:.1f} s",
            f"{row['prompt_tps']:.0f} tok/s ({row['prompt_tokens']} tok)",
            f"{row['gen_tps']:.1f} tok/s",
            str(row["threads"]),
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    sys.exit(main())
