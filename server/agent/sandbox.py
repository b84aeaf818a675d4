"""The agent's path sandbox: every path a model names is checked here, at check time and
again at the moment of the read or write.

Rules (docs/ARCHITECTURE.md, "Agent"):
- A path is resolved with `realpath` (for a new file: its nearest existing parent, then
  the rest) and must equal a workspace root or start with a root plus a separator; a
  string-prefix test (`/proj` vs `/proj-evil`) is never used. `~`, NUL and control
  characters are refused outright; absolute paths are allowed only inside a root.
- Secret files (the index's secret globs) are never read, listed as readable or written.
- Protected files (ones that grant permissions or run code) always need a confirmation
  naming the risk; the list is code, not a setting, so no workspace file can shorten it.
  The check runs on the path as written and on its real path, case-folded and
  NFC-normalised, and the stricter answer wins.
- Reads and writes walk from the root's directory descriptor one component at a time with
  `O_NOFOLLOW`, so a folder swapped for a symlink after the check is not followed.
  Writes go to a temporary file in the same folder and are renamed over the target;
  files with more than one hard link are refused (the other link may be outside).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pathspec

from ouzel.indexer.config import IndexConfig
from ouzel.indexer.walk import IgnoreRules, is_secret_path

# Files that grant permissions, configure tools or run code when something opens, builds
# or installs the workspace. Patterns are matched at any depth, against the lower-cased,
# NFC-normalised path. The risk text is shown to the user in the confirmation.
PROTECTED: tuple[tuple[str, str], ...] = (
    (".vscode/", "editor settings and tasks: can auto-approve tools or run commands"),
    (".idea/", "IDE settings: can run commands"),
    (".git/", "git internals: hooks and config run code on git commands"),
    (".git", "git worktree link: points git at another repository"),
    (".gitattributes", "git filters: can run code on checkout"),
    (".gitmodules", "submodules: fetch and run code from other repositories"),
    (".ouzel/", "ouzel's own settings and state"),
    (".github/workflows/", "CI workflows: run code with the repository's secrets"),
    (".github/actions/", "CI actions: run code with the repository's secrets"),
    (".github/copilot-instructions.md", "instructions for AI agents"),
    (".github/agents/", "instructions for AI agents"),
    (".github/hooks/", "agent hooks: run commands"),
    (".gitlab-ci.yml", "CI pipeline: runs code with the repository's secrets"),
    (".claude/", "agent settings: can auto-approve tools"),
    (".continue/", "agent settings: can auto-approve tools"),
    (".cursor/", "agent settings"),
    (".devcontainer/", "dev container: runs commands when opened"),
    (".nvim.lua", "Neovim runs it when the folder is opened (exrc)"),
    (".nvimrc", "Neovim runs it when the folder is opened (exrc)"),
    (".exrc", "Vim/Neovim run it when the folder is opened"),
    (".envrc", "direnv runs it when you enter the folder"),
    (".bashrc", "shell startup file: runs in every shell"),
    (".bash_profile", "shell startup file: runs in every login shell"),
    (".bash_login", "shell startup file"),
    (".profile", "shell startup file: runs in every login shell"),
    (".zshrc", "shell startup file: runs in every shell"),
    (".zshenv", "shell startup file: runs in every shell"),
    (".zprofile", "shell startup file"),
    (".config/fish/", "shell startup files"),
    (".config/nvim/", "Neovim configuration: runs on every start"),
    ("package.json", "package manifest: install scripts run code"),
    ("package-lock.json", "lockfile: decides which code is installed"),
    ("npm-shrinkwrap.json", "lockfile: decides which code is installed"),
    ("yarn.lock", "lockfile: decides which code is installed"),
    ("pnpm-lock.yaml", "lockfile: decides which code is installed"),
    (".yarnrc", "package manager settings: registries and scripts"),
    (".yarnrc.yml", "package manager settings: registries and scripts"),
    ("bun.lockb", "lockfile: decides which code is installed"),
    ("pyproject.toml", "package manifest: build hooks run code"),
    ("setup.py", "package build script: runs on install"),
    ("setup.cfg", "package manifest"),
    ("requirements*.txt", "dependency list: decides which code is installed"),
    ("constraints*.txt", "dependency list: decides which code is installed"),
    ("pipfile", "dependency list: decides which code is installed"),
    ("pipfile.lock", "lockfile: decides which code is installed"),
    ("poetry.lock", "lockfile: decides which code is installed"),
    ("uv.lock", "lockfile: decides which code is installed"),
    ("pdm.lock", "lockfile: decides which code is installed"),
    ("*.pth", "Python runs .pth files at startup"),
    ("sitecustomize.py", "Python runs it at startup"),
    ("usercustomize.py", "Python runs it at startup"),
    ("conftest.py", "pytest runs it before any test"),
    ("tox.ini", "test runner config: runs commands"),
    ("noxfile.py", "test runner script: runs commands"),
    (".pre-commit-config.yaml", "git hooks: run code on commit"),
    ("cargo.toml", "package manifest: build scripts run code"),
    ("cargo.lock", "lockfile: decides which code is installed"),
    ("build.rs", "Cargo runs it on every build"),
    ("go.mod", "module manifest: decides which code is built"),
    ("go.sum", "lockfile: decides which code is built"),
    ("gemfile", "dependency list: decides which code is installed"),
    ("gemfile.lock", "lockfile: decides which code is installed"),
    ("*.gemspec", "package manifest"),
    ("composer.json", "package manifest: scripts run code"),
    ("composer.lock", "lockfile: decides which code is installed"),
    ("pom.xml", "build file: plugins run code"),
    ("build.gradle", "build script: runs code"),
    ("build.gradle.kts", "build script: runs code"),
    ("settings.gradle", "build script: runs code"),
    ("settings.gradle.kts", "build script: runs code"),
    ("gradle.properties", "build settings"),
    ("gradle/wrapper/", "build tool download: runs code"),
    ("gradlew", "build tool launcher: runs code"),
    ("makefile", "build script: runs commands"),
    ("gnumakefile", "build script: runs commands"),
    ("justfile", "task runner script: runs commands"),
    ("dockerfile", "container build: runs commands"),
    ("docker-compose.yml", "containers: runs commands and mounts folders"),
    ("compose.yaml", "containers: runs commands and mounts folders"),
)

_PROTECTED_SPECS = [
    (pathspec.GitIgnoreSpec.from_lines([pattern]), risk) for pattern, risk in PROTECTED
]


class SandboxError(Exception):
    """A path or an operation the sandbox refuses; the message is the reason."""


class _MissingFolder(SandboxError):
    pass


@dataclass(frozen=True)
class Resolved:
    """A checked path: where it really is, which root holds it, and what it is."""

    real: str  # absolute, symlinks resolved
    root: str  # the real workspace root that contains it
    relative: str  # posix, relative to `root` ("" for the root itself)
    exists: bool
    is_dir: bool
    protected: str | None  # the risk, when the file is protected

    @property
    def parts(self) -> list[str]:
        return [part for part in self.relative.split("/") if part]


@dataclass(frozen=True)
class FileState:
    """A file's bytes and what is needed to restore it exactly."""

    data: bytes
    mode: int
    sha256: str


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fold(relative: str) -> str:
    return unicodedata.normalize("NFC", relative).casefold()


def protection_risk(relative: str, extra: pathspec.GitIgnoreSpec | None = None) -> str | None:
    """The risk of writing `relative` (posix, workspace-relative), or None."""
    if not relative:
        return None
    folded = _fold(relative)
    for spec, risk in _PROTECTED_SPECS:
        if spec.match_file(folded):
            return risk
    if extra is not None and (extra.match_file(folded) or extra.match_file(relative)):
        return "listed in your `agent.protected` setting"
    return None


class Sandbox:
    """The workspace roots and the rules for every path the agent touches."""

    def __init__(
        self,
        roots: Sequence[Path | str],
        secret_globs: Iterable[str],
        exclude: Iterable[str] = (),
        max_file_bytes: int = 2_000_000,
        protected: Iterable[str] = (),
    ) -> None:
        if not roots:
            raise SandboxError("the agent needs at least one workspace folder")
        self.roots = [os.path.realpath(os.fspath(root)) for root in roots]
        for root in self.roots:
            if not os.path.isdir(root):
                raise SandboxError(f"workspace folder {root} is not a folder")
        self.secret_globs = tuple(secret_globs)
        self.max_file_bytes = max_file_bytes
        extra = [p.casefold() for p in protected if p.strip()]
        self.extra_protected = pathspec.GitIgnoreSpec.from_lines(extra) if extra else None
        config = IndexConfig(
            secret_globs=list(self.secret_globs),
            exclude=list(exclude),
            max_file_bytes=max_file_bytes,
            watch=False,
        )
        self.rules = {root: IgnoreRules(Path(root), config) for root in self.roots}

    # --- checks ------------------------------------------------------------------------

    def resolve(self, raw: object) -> Resolved:
        """Check a path as the model wrote it; raise SandboxError naming the reason."""
        if not isinstance(raw, str):
            raise SandboxError(f"a path must be a string, not {type(raw).__name__}")
        text = raw.strip()
        if not text:
            raise SandboxError("the path is empty")
        if any(ch == "\0" or (ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in text):
            raise SandboxError("the path contains a NUL or control character")
        if text.startswith("~"):
            raise SandboxError("`~` is not expanded: paths are relative to the workspace folder")
        if "\\" in text:
            raise SandboxError("use `/` as the path separator")
        joined = text if os.path.isabs(text) else os.path.join(self.roots[0], text)
        real = self._realpath(joined)
        root = self._root_of(real)
        if root is None:
            raise SandboxError(f"`{raw}` is outside the workspace (it resolves to {real})")
        relative = os.path.relpath(real, root).replace(os.sep, "/")
        relative = "" if relative == "." else relative
        written = os.path.relpath(os.path.normpath(joined), root).replace(os.sep, "/")
        try:
            info = os.lstat(real)
        except OSError:
            info = None
        is_dir = info is not None and stat.S_ISDIR(info.st_mode)
        return Resolved(
            real=real,
            root=root,
            relative=relative,
            exists=info is not None,
            is_dir=is_dir,
            protected=protection_risk(relative, self.extra_protected)
            or protection_risk(written, self.extra_protected),
        )

    @staticmethod
    def _realpath(joined: str) -> str:
        """`realpath`; for a missing path, of its nearest existing parent plus the rest."""
        try:
            return os.path.realpath(joined, strict=True)
        except OSError:
            pass
        head, tail = joined, []
        while not os.path.lexists(head):
            parent, name = os.path.split(head)
            if parent == head:
                break
            tail.append(name)
            head = parent
        # Follows every symlink on the way, a dangling one too, so none can point outside.
        base = os.path.realpath(head)
        rest = [part for part in reversed(tail) if part]
        if any(part in ("..", ".") for part in rest):
            return os.path.realpath(joined)
        return os.path.join(base, *rest)

    def _root_of(self, real: str) -> str | None:
        for root in self.roots:
            if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
                return root
        return None

    def is_secret(self, resolved: Resolved, raw: str = "") -> bool:
        candidates = {resolved.relative, _fold(resolved.relative)}
        if raw and not os.path.isabs(raw):
            candidates.add(os.path.normpath(raw).replace(os.sep, "/"))
        root = Path(resolved.root)
        return any(
            c and c != "." and is_secret_path(c, root, self.secret_globs) for c in candidates
        )

    def check_read(self, raw: object, want_dir: bool = False) -> Resolved:
        resolved = self.resolve(raw)
        if self.is_secret(resolved, raw if isinstance(raw, str) else ""):
            raise SandboxError(f"`{raw}` is a secret file: the agent never reads it")
        if not resolved.exists:
            raise SandboxError(f"`{raw}` does not exist")
        if want_dir and not resolved.is_dir:
            raise SandboxError(f"`{raw}` is not a folder")
        if not want_dir and resolved.is_dir:
            raise SandboxError(f"`{raw}` is a folder, not a file")
        return resolved

    def check_write(self, raw: object) -> Resolved:
        resolved = self.resolve(raw)
        if not resolved.relative:
            raise SandboxError("the workspace folder itself cannot be written")
        if self.is_secret(resolved, raw if isinstance(raw, str) else ""):
            raise SandboxError(f"`{raw}` is a secret file: the agent never writes it")
        if resolved.is_dir:
            raise SandboxError(f"`{raw}` is a folder, not a file")
        if resolved.exists:
            info = os.lstat(resolved.real)
            if not stat.S_ISREG(info.st_mode):
                raise SandboxError(f"`{raw}` is not a regular file")
            if info.st_nlink > 1:
                raise SandboxError(
                    f"`{raw}` has {info.st_nlink} hard links: writing it would change the "
                    "other links too, which may be outside the workspace"
                )
        return resolved

    # --- descriptor-safe access ----------------------------------------------------------

    @contextlib.contextmanager
    def _folder_fd(self, resolved: Resolved, create: bool = False) -> Iterator[int]:
        """A descriptor of the file's folder, reached from the root without following
        symlinks; `create` makes missing folders (their paths go to `created`)."""
        fd = os.open(resolved.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in resolved.parts[:-1]:
                try:
                    next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError as exc:
                    if not create:
                        raise _MissingFolder(
                            f"folder `{part}` of `{resolved.relative}` is missing"
                        ) from exc
                    os.mkdir(part, 0o755, dir_fd=fd)
                    next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    raise SandboxError(
                        f"`{resolved.relative}` changed under the agent: `{part}` is no longer "
                        f"a plain folder ({exc.strerror})"
                    ) from exc
                os.close(fd)
                fd = next_fd
            yield fd
        finally:
            os.close(fd)

    def missing_folders(self, resolved: Resolved) -> list[str]:
        """Folders (relative, outermost first) that writing `resolved` would create."""
        missing = []
        parts = resolved.parts[:-1]
        for depth in range(1, len(parts) + 1):
            relative = "/".join(parts[:depth])
            if not os.path.lexists(os.path.join(resolved.root, relative)):
                missing.append(relative)
        return missing

    def read_state(self, resolved: Resolved) -> FileState | None:
        """The file's bytes and mode, or None when it does not exist. Refuses symlinks swapped
        in after the check, non-regular files, hard links and files that are too large."""
        try:
            with self._folder_fd(resolved) as folder:
                try:
                    fd = os.open(resolved.parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
                except FileNotFoundError:
                    return None
                except OSError as exc:
                    raise SandboxError(
                        f"`{resolved.relative}` cannot be opened safely ({exc.strerror}; a "
                        "symlink here is not followed)"
                    ) from exc
                try:
                    info = os.fstat(fd)
                    self._check_file(resolved, info)
                    data = _read_all(fd)
                finally:
                    os.close(fd)
        except _MissingFolder:
            return None
        return FileState(data, stat.S_IMODE(info.st_mode), sha256(data))

    def _check_file(self, resolved: Resolved, info: os.stat_result) -> None:
        if not stat.S_ISREG(info.st_mode):
            raise SandboxError(f"`{resolved.relative}` is not a regular file")
        if info.st_nlink > 1:
            raise SandboxError(
                f"`{resolved.relative}` has {info.st_nlink} hard links; the agent does not "
                "touch files whose other links may be outside the workspace"
            )
        if info.st_size > self.max_file_bytes:
            raise SandboxError(
                f"`{resolved.relative}` is {info.st_size} bytes, more than the agent's "
                f"limit of {self.max_file_bytes}"
            )

    def read_bytes(self, raw: object) -> tuple[Resolved, bytes]:
        resolved = self.check_read(raw)
        state = self.read_state(resolved)
        if state is None:
            raise SandboxError(f"`{raw}` does not exist")
        return resolved, state.data

    def write_bytes(
        self,
        resolved: Resolved,
        data: bytes,
        expect_sha256: str | None,
        mode: int | None = None,
    ) -> None:
        """Write atomically after checking again that the file is what the proposal was
        made from: `expect_sha256` None means it must not exist."""
        again = self.check_write(os.path.join(resolved.root, resolved.relative))
        if again.real != resolved.real:
            raise SandboxError(f"`{resolved.relative}` now resolves elsewhere ({again.real})")
        name = resolved.parts[-1]
        with self._folder_fd(resolved, create=True) as folder:
            current = self._current_at(folder, name, resolved)
            if expect_sha256 is None and current is not None:
                raise SandboxError(f"`{resolved.relative}` was created meanwhile; not overwritten")
            if expect_sha256 is not None:
                if current is None:
                    raise SandboxError(f"`{resolved.relative}` was deleted meanwhile")
                if current.sha256 != expect_sha256:
                    raise SandboxError(
                        f"`{resolved.relative}` changed since the agent read it; read it again"
                    )
            if mode is None:
                mode = current.mode if current is not None else 0o644
            temp = f".{name}.ouzel-{os.getpid()}-{os.urandom(4).hex()}.tmp"
            fd = os.open(
                temp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                0o600,
                dir_fd=folder,
            )
            try:
                try:
                    _write_all(fd, data)
                    os.fchmod(fd, mode)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                # Renaming replaces whatever is at `name` (even a symlink swapped in now)
                # and never writes through it.
                os.rename(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=folder)
                raise

    def _current_at(self, folder: int, name: str, resolved: Resolved) -> FileState | None:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SandboxError(
                f"`{resolved.relative}` cannot be opened safely ({exc.strerror}; a symlink "
                "here is not followed)"
            ) from exc
        try:
            info = os.fstat(fd)
            self._check_file(resolved, info)
            data = _read_all(fd)
        finally:
            os.close(fd)
        return FileState(data, stat.S_IMODE(info.st_mode), sha256(data))

    def delete_file(self, resolved: Resolved, expect_sha256: str) -> None:
        """Remove a file the agent created (undo), if it still holds what the agent wrote."""
        with self._folder_fd(resolved) as folder:
            current = self._current_at(folder, resolved.parts[-1], resolved)
            if current is None:
                return
            if current.sha256 != expect_sha256:
                raise SandboxError(
                    f"`{resolved.relative}` changed after the agent wrote it; not deleted"
                )
            os.unlink(resolved.parts[-1], dir_fd=folder)

    def remove_empty_folder(self, root: str, relative: str) -> None:
        path = os.path.join(root, relative)
        if self._root_of(os.path.realpath(path)) is None or os.path.islink(path):
            return
        with contextlib.suppress(OSError):
            os.rmdir(path)

    # --- walking -----------------------------------------------------------------------

    def walk_files(self, under: Resolved) -> Iterator[tuple[str, int]]:
        """(relative path, open descriptor) of each file under a folder that the ignore and
        secret rules allow, walking by descriptor: symlinks are never followed. The caller
        closes nothing: each descriptor is closed when the next item is requested."""
        rules = self.rules[under.root]
        yield from self._walk(rules, _open_folder(under), under.relative)

    def _walk(self, rules: IgnoreRules, folder: int, relative: str) -> Iterator[tuple[str, int]]:
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
            for entry in entries:
                path = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_symlink():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if rules.reason(path, is_dir=True):
                        continue
                    try:
                        child = os.open(
                            entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder
                        )
                    except OSError:
                        continue
                    yield from self._walk(rules, child, path)
                    continue
                if not entry.is_file(follow_symlinks=False) or rules.reason(path):
                    continue
                try:
                    fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
                except OSError:
                    continue
                try:
                    info = os.fstat(fd)
                    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                        yield path, fd
                finally:
                    os.close(fd)
        finally:
            os.close(folder)

    def list_folder(self, under: Resolved) -> list[tuple[str, str]]:
        """(name, kind) of a folder's entries; kind is "dir", "file", "symlink", "secret" or
        "ignored". Nothing is followed."""
        rules = self.rules[under.root]
        fd = _open_folder(under)
        try:
            with os.scandir(fd) as listing:
                entries = sorted(listing, key=lambda e: e.name)
            result = []
            for entry in entries:
                path = f"{under.relative}/{entry.name}" if under.relative else entry.name
                if entry.is_symlink():
                    kind = "symlink"
                elif entry.is_dir(follow_symlinks=False):
                    kind = rules.reason(path, is_dir=True) or "dir"
                else:
                    kind = rules.reason(path) or "file"
                result.append((entry.name, kind))
            return result
        finally:
            os.close(fd)


def _open_folder(resolved: Resolved) -> int:
    """A descriptor of the folder `resolved`, reached from its root without symlinks."""
    fd = os.open(resolved.root, os.O_RDONLY | os.O_DIRECTORY)
    for part in resolved.parts:
        try:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        except OSError as exc:
            raise SandboxError(
                f"`{resolved.relative}` is not a plain folder inside the workspace ({exc.strerror})"
            ) from exc
        finally:
            os.close(fd)
        fd = next_fd
    return fd


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def sandbox_for(roots: Sequence[Path | str], settings: object) -> Sandbox:
    """The sandbox for workspace `roots` under `settings` (an `ouzel.server.settings.Settings`)."""
    from ouzel.server.settings import Settings

    assert isinstance(settings, Settings)
    return Sandbox(
        roots,
        settings.index.secret_globs,
        exclude=settings.index.exclude,
        protected=settings.agent.protected,
    )
