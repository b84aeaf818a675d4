"""The distribution installs every package folder, under the `ouzel` namespace only."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from ouzel.server.settings import tomllib

PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
ROOT = Path(__file__).resolve().parents[1]
TOP_FOLDERS = {"server": "ouzel.server", "indexer": "ouzel.indexer", "inference": "ouzel.inference"}


def _declared_packages() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(data["tool"]["setuptools"]["packages"])


def test_every_package_folder_is_declared() -> None:
    found = set()
    for folder, package in TOP_FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *relative.parts]))
    assert found == _declared_packages()


def test_console_script_and_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ouzel.server.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("ouzel ")


def test_help_lists_subcommands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ouzel.server.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "serve" in out.stdout


def test_wheel_installs_only_under_ouzel(tmp_path: Path) -> None:
    subprocess.run(
        [*PIP_WHEEL, "-w", str(tmp_path), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("ouzel-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"ouzel"}
    assert "ouzel/server/cli.py" in names and "ouzel/indexer/__init__.py" in names
