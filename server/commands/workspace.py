"""What the CLI commands share: the workspace root, its settings and its index.

`ouzel index`, `ouzel search`, `ouzel ask` and `ouzel doctor` find the workspace the same
way (the nearest folder with `.ouzel/` or `.git`), load its settings once with the same
loader as the server (`load_for_workspace`), report each settings problem once on stderr,
and find an index the same way (the nearest folder at or above the current one that has
one: `ouzel index` may have been run in a subfolder).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ouzel.indexer.config import IndexConfig
    from ouzel.server.settings import Settings

# Every `ouzel` run builds every command's parser, so this module imports only the standard
# library at the top; the settings model, the indexer and the server's index settings are
# imported where they are used (`ouzel --help` must not load pydantic, pygls or LanceDB).

_reported: set[str] = set()  # settings problems already printed by this process


def find_workspace_root(start: Path) -> Path | None:
    """The nearest folder at or above `start` with `.ouzel/` or `.git`."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".ouzel").is_dir() or (folder / ".git").exists():
            return folder
    return None


def load_settings(root: Path | None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """The settings for `root` (user file, its `.ouzel/config.toml`, then `overrides`).

    Each problem is printed once per process, however often a command loads settings.
    """
    from ouzel.server.settings import load_for_workspace

    loaded = load_for_workspace(root, None, overrides)
    for problem in loaded.problems:
        if problem not in _reported:
            _reported.add(problem)
            print(f"ouzel: {problem}", file=sys.stderr)
    return loaded.settings


def cli_index_config(
    settings: Settings,
    location: Literal["workspace", "cache"] | None = None,  # argparse checks the choice
    index_dir: str | None = None,
    workers: int | None = None,
) -> IndexConfig:
    """The index configuration from the settings and the command line (never watching)."""
    from ouzel.server.features.indexing import index_config

    config = index_config(settings.index)
    if location:
        config.location = location
    if index_dir:
        config.index_dir = Path(index_dir).resolve()
    if workers:
        config.workers = workers
    config.watch = False
    return config


def has_index(root: Path, config: IndexConfig) -> bool:
    from ouzel.indexer.config import index_dir_for

    return (index_dir_for(root, config) / "meta.json").exists()


def find_index_root(start: Path, config: IndexConfig, stop: Path | None = None) -> Path | None:
    """The nearest folder at or above `start` (up to `stop`) that has an index."""
    start, stop = start.resolve(), stop.resolve() if stop is not None else None
    for folder in (start, *start.parents):
        if has_index(folder, config):
            return folder
        if folder == stop:
            break
    return None


# --- trying a remote server from the command line (`ouzel ask`, `ouzel doctor`) -------------


def add_remote_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("try a remote server without editing settings")
    group.add_argument("--endpoint", metavar="URL", help="OpenAI-compatible base URL (…/v1)")
    group.add_argument("--api-key-env", metavar="VAR", help="environment variable with its key")
    group.add_argument("--model", metavar="NAME", help="model id to ask for")
    group.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow sending code to a non-loopback server for this run",
    )


def remote_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings layered on top of the user's for --endpoint / --api-key-env / --model."""
    remote: dict[str, Any] = {}
    if args.endpoint:
        remote.update(backend="openai", base_url=args.endpoint)
    if args.api_key_env:
        remote.update(api_key_env=args.api_key_env, api_key_file=None)
    if args.model:
        remote["model"] = args.model
    overrides: dict[str, Any] = {}
    if remote:
        overrides["models"] = {"remote": remote}
    if args.allow_remote:
        overrides["privacy"] = {"allow_remote": True}
    return overrides


def load_cli_settings(args: argparse.Namespace, root: Path | None) -> Settings:
    """The settings for `root` plus the command-line overrides; problems go to stderr."""
    settings = load_settings(root, remote_overrides(args))
    if args.endpoint:
        # An endpoint on the command line is the one to try first for chat-like work.
        routing = settings.routing
        for task in ("chat", "agent", "code_action"):
            order = getattr(routing, task)
            setattr(routing, task, ["remote", *[name for name in order if name != "remote"]])
    return settings


def quiet_logging(settings: Settings) -> None:
    """Log to ouzel's log file, not the terminal: notices already say what matters."""
    from ouzel.server import logs

    logs.configure(settings.log_level)
