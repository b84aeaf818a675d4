"""`ouzel ask "question"`: stream a chat answer through the router.

Inside a workspace it adds the most relevant chunks of the workspace index as context
(`ouzel.indexer.search.search_chunks`, when an index exists: `ouzel index`); routing notices
("remote is down; answering with local") and the serving profile go to stderr, the answer
to stdout, so `ouzel ask ... > answer.md` keeps only the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from ouzel.server.cli import Command, register
from ouzel.server.commands.workspace import (
    add_remote_arguments,
    cli_index_config,
    find_index_root,
    find_workspace_root,
    load_cli_settings,
    quiet_logging,
)

SYSTEM_PROMPT = (
    "You are ouzel, a coding assistant running on the user's own machines. Answer the "
    "question concisely; use the workspace excerpts when they are relevant and say which "
    "file you rely on."
)
STOPPED_BECAUSE = {
    "repetition": "it started repeating itself",
    "time": "it took longer than `routing.chat_time_cap_s`",
    "length": "it reached --max-tokens",
}
CONTEXT_CHUNKS = 6
CONTEXT_CHARS = 6000


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", nargs="+", help="the question ('-' reads it from stdin)")
    parser.add_argument(
        "--no-context", action="store_true", help="do not add workspace excerpts to the question"
    )
    parser.add_argument(
        "--max-tokens", type=int, default=1024, help="longest answer in tokens (default 1024)"
    )
    add_remote_arguments(parser)


def _run(args: argparse.Namespace) -> int:
    question = " ".join(args.question)
    if question == "-":
        question = sys.stdin.read()
    if not question.strip():
        print("ouzel ask: the question is empty", file=sys.stderr)
        return 2
    root = find_workspace_root(Path.cwd())
    settings = load_cli_settings(args, root)
    quiet_logging(settings)
    context, note = (
        ("", None)
        if args.no_context or root is None
        else workspace_context(root, question, settings)
    )
    if note:
        print(f"ouzel: {note}", file=sys.stderr)
    try:
        return asyncio.run(_ask(settings, question, context, args.max_tokens))
    except KeyboardInterrupt:
        print("\nouzel: cancelled", file=sys.stderr)
        return 130


async def _ask(settings: Any, question: str, context: str, max_tokens: int) -> int:
    from ouzel.inference.router import Notices, Router
    from ouzel.inference.types import BackendError, CancelToken, ChatMessage

    router = Router()
    notices = Notices(lambda text: print(f"ouzel: {text}", file=sys.stderr, flush=True))
    user = f"{context}\n\nQuestion: {question}" if context else question
    messages = [ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", user)]
    started = time.monotonic()
    wrote = False
    stop_reason = None
    try:
        async for chunk in router.stream_chat(
            settings, "chat", messages, [], CancelToken(), max_tokens=max_tokens, notices=notices
        ):
            if chunk.text:
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
                wrote = True
            if chunk.done:
                stop_reason = chunk.stop_reason
    except BackendError as exc:
        if wrote:
            print(file=sys.stdout)
        print(f"ouzel ask: {exc}", file=sys.stderr)
        return 1
    finally:
        served = router.served.get("chat")
        who = router.describe(settings, served.profile) if served else None  # before closing
        await router.aclose()
        router.close()
    if wrote:
        print()
    if stop_reason in STOPPED_BECAUSE:
        print(f"ouzel: the answer was cut short: {STOPPED_BECAUSE[stop_reason]}", file=sys.stderr)
    if who is not None:
        print(f"ouzel: answered by {who} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def workspace_context(root: Path, question: str, settings: Any) -> tuple[str, str | None]:
    """Workspace excerpts for `question`, and a note when there are none and why."""
    try:
        from ouzel.indexer.index import WorkspaceIndex
        from ouzel.indexer.search import search_chunks
    except ImportError as exc:
        return "", f"no workspace context: the workspace index is not available ({exc})"
    config = cli_index_config(settings)
    root = find_index_root(Path.cwd(), config, stop=root) or root
    try:
        index = WorkspaceIndex(root, config, writer=False)
    except Exception as exc:  # a broken index must not stop the question
        return "", f"no workspace context ({type(exc).__name__}: {exc})"
    try:
        if index.problem:
            return "", f"no workspace context: {index.problem} (run `ouzel index`)"
        hits = search_chunks(index, question, CONTEXT_CHUNKS)
    except Exception as exc:
        return "", f"no workspace context ({type(exc).__name__}: {exc})"
    finally:
        index.close()
    excerpts = []
    used = 0
    for hit in hits:
        if not hit.text.strip() or used + len(hit.text) > CONTEXT_CHARS:
            continue
        used += len(hit.text)
        excerpts.append(f"### {hit.shown_lines()}\n```\n{hit.text.rstrip()}\n```")
    if not excerpts:
        return "", "no workspace context found for this question"
    return "Excerpts from the workspace:\n\n" + "\n\n".join(excerpts), None


register(Command("ask", "ask a question; the answer streams through the router", _arguments, _run))
