"""How one workspace index behaves: a plain dataclass the server builds from its settings."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import platformdirs

if TYPE_CHECKING:  # parser processes import this module and must not load Arrow
    from ouzel.indexer.embeddings import EmbeddingProvider

# Files that are never indexed nor put in prompts (gitignore-style patterns). The server's
# settings default to the same list (tests/indexer/test_config.py keeps them equal).
DEFAULT_SECRET_GLOBS: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".ssh/",
    ".aws/",
    ".kube/",
    ".gnupg/",
    ".docker/config.json",
    ".netrc",
    ".npmrc",
    ".pypirc",
    "credentials.json",
    "*.keystore",
    "*.jks",
)

# Folders and files skipped in every workspace, ignore files or not: version control,
# ouzel's own state, dependency and tool caches that are never the user's code.
BUILTIN_EXCLUDES: tuple[str, ...] = (
    ".git/",
    ".hg/",
    ".svn/",
    ".ouzel/",
    "node_modules/",
    "__pycache__/",
    ".venv/",
    ".tox/",
    ".nox/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".DS_Store",
)

# Generated files recognised by name (lock files, minified bundles, protobuf output).
GENERATED_GLOBS: tuple[str, ...] = (
    "*.min.js",
    "*.min.css",
    "*.min.mjs",
    "*.map",
    "*-lock.json",
    "*.lock",
    "package-lock.json",
    "pnpm-lock.yaml",
    "go.sum",
    "*_pb2.py",
    "*_pb2_grpc.py",
    "*.pb.go",
    "*.pb.cc",
    "*.pb.h",
)


@dataclass
class IndexConfig:
    """Settings of one `WorkspaceIndex` (see IndexSettings in the server for the meanings)."""

    location: Literal["workspace", "cache"] = "workspace"
    # An explicit index folder wins over `location` (tests, benchmarks).
    index_dir: Path | None = None
    max_file_bytes: int = 1_000_000
    exclude: list[str] = field(default_factory=list)
    secret_globs: list[str] = field(default_factory=lambda: list(DEFAULT_SECRET_GLOBS))
    watch: bool = True
    watch_debounce_ms: int = 50
    # Parser processes; 0: one per core.
    workers: int = 0
    # Chunks are cut on syntax boundaries and hold about this many bytes at most.
    chunk_max_bytes: int = 2000
    # A second process finding the index locked waits this long for the writer, then
    # opens it read-only.
    lock_wait_s: float = 0.0
    # A local embedding model: chunks get vectors and `search_similar` works. Off: None.
    embedder: EmbeddingProvider | None = field(default=None, compare=False, repr=False)

    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else max(1, os.cpu_count() or 1)


def index_dir_for(root: Path, config: IndexConfig) -> Path:
    """Where the index of `root` lives: `.ouzel/index/` or a per-root user cache folder."""
    if config.index_dir is not None:
        return config.index_dir
    if config.location == "cache":
        resolved = str(root.resolve())
        digest = hashlib.sha1(resolved.encode(), usedforsecurity=False).hexdigest()[:16]
        return Path(platformdirs.user_cache_dir("ouzel")) / "index" / f"{root.name}-{digest}"
    return root / ".ouzel" / "index"
