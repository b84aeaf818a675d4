"""`ouzel doctor`: can each configured model backend serve? A table, and a non-zero exit
code when one of them cannot.

Remote profiles are probed (`GET /v1/models`: no code is sent); local profiles have their
GGUF file checked. `--generate` also asks every usable profile for a few tokens.
`--endpoint URL`, `--api-key-env VAR` and `--model NAME` try a remote server without
editing settings (shared with `ouzel ask`, in `workspace.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ouzel.server.cli import Command, register
from ouzel.server.commands.workspace import (
    add_remote_arguments,
    find_workspace_root,
    load_cli_settings,
    quiet_logging,
)

# --- the checks -----------------------------------------------------------------------------


@dataclass
class Check:
    profile: str
    backend: str
    where: str
    model: str
    reachable: bool | None
    latency_ms: float | None
    used_for: list[str]
    usable: bool
    problem: str | None
    generated: str | None = None
    first_token_ms: float | None = None
    tokens_per_s: float | None = None


async def check_profiles(settings: Any, generate: bool) -> list[Check]:
    from ouzel.inference.router import TASK_KINDS, Router, configured_profiles

    router = Router()
    profiles = configured_profiles(settings)
    try:
        checks = []
        for name, profile in profiles.items():
            used_for: list[str] = [
                task for task in TASK_KINDS if name in getattr(settings.routing, task)
            ]
            if profile.backend == "openai":
                check = await _check_remote(router, settings, name, profile, used_for)
            else:
                check = await asyncio.to_thread(_check_local, name, profile, used_for)
            if generate and check.usable:
                await _generate(router, settings, name, profile, check)
            checks.append(check)
        return checks
    finally:
        await router.aclose()
        router.close()


async def _check_remote(
    router: Any, settings: Any, name: str, profile: Any, used_for: list[str]
) -> Check:
    from ouzel.inference.health import probe_once
    from ouzel.inference.openai_compat import OpenAICompatBackend
    from ouzel.inference.router import profile_is_remote

    entry = router.entry(name, profile, settings)
    remote = profile_is_remote(profile)
    check = Check(
        profile=name,
        backend="openai (remote)" if remote else "openai (this machine)",
        where=profile.base_url or "-",
        model=profile.model or "-",
        reachable=None,
        latency_ms=None,
        used_for=used_for,
        usable=False,
        problem=None,
    )
    backend = entry.backend
    if not isinstance(backend, OpenAICompatBackend):
        check.problem = entry.error or "cannot build a client for it"
        return check
    check.where = backend.base_url
    skip = router.skip_reason(entry, False, settings)  # configuration only, privacy below
    if skip:
        check.problem = skip
        return check
    await probe_once(backend, entry.health)
    health = entry.health
    check.reachable = bool(health.reachable)
    check.latency_ms = round(health.probe_latency_s * 1000, 1) if health.probe_latency_s else None
    if health.served_models:
        check.model = profile.model or health.served_models[0]
    if not health.reachable:
        check.problem = health.last_error
        return check
    if remote and not settings.privacy.allow_remote:
        check.problem = (
            "reachable, but it is remote and `privacy.allow_remote` is off: ouzel will not "
            "send code there (set it in your user config, or pass --allow-remote)"
        )
        return check
    check.usable = True
    return check


def _check_local(name: str, profile: Any, used_for: list[str]) -> Check:
    from ouzel.inference.types import BackendUnavailable

    check = Check(
        profile=name,
        backend="llama.cpp (in process)",
        where=profile.model_path or profile.model or "default local model",
        model="-",
        reachable=None,
        latency_ms=None,
        used_for=used_for,
        usable=False,
        problem=None,
    )
    try:
        from ouzel.inference import catalog
        from ouzel.inference.llama_cpp import check_model_file, find_model_file

        path = (
            Path(profile.model_path).expanduser()
            if profile.model_path
            else find_model_file(profile.model or catalog.default_model())
        )
        check_model_file(path)
    except BackendUnavailable as exc:
        check.problem = str(exc)
        return check
    except (ImportError, OSError) as exc:
        check.problem = f"the local model is not available: {exc}"
        return check
    check.where = str(path)
    check.model = path.name
    check.reachable = True
    check.usable = True
    return check


async def _generate(router: Any, settings: Any, name: str, profile: Any, check: Check) -> None:
    """Ask the profile for a few tokens, straight through its backend."""
    from ouzel.inference.types import BackendError, CancelToken, ChatMessage

    entry = router.entry(name, profile, settings)
    started = time.perf_counter()
    first: float | None = None
    pieces: list[str] = []
    try:
        async for chunk in entry.backend.stream_chat(
            [ChatMessage("user", "Reply with the word OK.")], [], CancelToken(), max_tokens=8
        ):
            if chunk.text:
                first = first if first is not None else time.perf_counter() - started
                pieces.append(chunk.text)
    except BackendError as exc:
        check.usable = False
        check.problem = f"probe answered, but generation failed: {exc}"
        return
    total = time.perf_counter() - started
    check.generated = "".join(pieces).strip()[:40]
    check.first_token_ms = round(first * 1000, 1) if first is not None else None
    if first is not None and len(pieces) > 1 and total > first:
        check.tokens_per_s = round((len(pieces) - 1) / (total - first), 1)


# --- the command ------------------------------------------------------------------------


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--generate", action="store_true", help="also generate a few tokens with each profile"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_remote_arguments(parser)


def _run(args: argparse.Namespace) -> int:
    settings = load_cli_settings(args, find_workspace_root(Path.cwd()))
    quiet_logging(settings)
    checks = asyncio.run(check_profiles(settings, args.generate))
    if args.json:
        print(json.dumps([asdict(check) for check in checks], indent=2))
    else:
        _print_table(checks, settings)
    return 0 if all(check.usable for check in checks) else 1


def _print_table(checks: list[Check], settings: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from ouzel.inference.router import configured_profiles

    table = Table(title="ouzel model backends", title_justify="left")
    for column in ("profile", "backend", "endpoint / file", "model", "reachable", "latency"):
        table.add_column(column, overflow="fold")
    table.add_column("used for", overflow="fold")
    table.add_column("status / last error", overflow="fold")
    for check in checks:
        reachable = {True: "yes", False: "no", None: "-"}[check.reachable]
        latency = f"{check.latency_ms:.0f} ms" if check.latency_ms is not None else "-"
        status = "ok" if check.usable else f"UNUSABLE: {check.problem}"
        if check.generated is not None:
            speed = f", {check.tokens_per_s} tok/s" if check.tokens_per_s else ""
            status += f" (said {check.generated!r}, first token {check.first_token_ms} ms{speed})"
        table.add_row(
            check.profile,
            check.backend,
            check.where,
            check.model,
            reachable,
            latency,
            ", ".join(check.used_for) or "-",
            status,
            style=None if check.usable else "red",
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped or captured: do not fold at 80 columns
    console.print(table)
    missing = sorted(
        {
            name
            for task in ("inline_completion", "code_action", "chat", "agent", "embeddings")
            for name in getattr(settings.routing, task)
            if name not in configured_profiles(settings)
        }
    )
    if missing:
        console.print(f"not configured (skipped by routing): {', '.join(missing)}")


register(Command("doctor", "check that the configured model backends can serve", _arguments, _run))
