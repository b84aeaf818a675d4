"""The CLI commands' shared way to find the workspace, its settings and its index
(`server/commands/workspace.py`), through the real `ouzel` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ouzel.indexer.config import IndexConfig
from ouzel.server.commands.workspace import find_index_root, find_workspace_root

OUZEL = str(Path(sys.executable).with_name("ouzel"))
BROKEN = "[completion\nmax_tokens = = 3\n"  # not TOML


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env[name] = str(tmp_path / name.lower())
    return env


def ouzel(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OUZEL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A workspace with a broken `.ouzel/config.toml`, a broken user config, and a folder
    four levels down."""
    env = _env(tmp_path)
    user_config = Path(env["XDG_CONFIG_HOME"]) / "ouzel" / "config.toml"
    user_config.parent.mkdir(parents=True)
    user_config.write_text(BROKEN)
    root = tmp_path / "w"
    (root / ".ouzel").mkdir(parents=True)
    (root / ".ouzel" / "config.toml").write_text(BROKEN)
    deep = root / "pkg" / "sub" / "deeper" / "deepest"
    deep.mkdir(parents=True)
    (root / "pkg" / "shapes.py").write_text("def area_of_circle(radius):\n    return 3 * radius\n")
    return root, deep, env


def _problems(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "cannot read settings" in line]


def test_search_reports_each_settings_problem_once(
    workspace: tuple[Path, Path, dict[str, str]],
) -> None:
    root, deep, env = workspace
    indexed = ouzel("index", str(root), "--json", cwd=root, env=env)
    assert indexed.returncode == 0, indexed.stderr
    assert len(_problems(indexed.stderr)) == 2, indexed.stderr  # the user's file and root's
    found = ouzel("search", "area_of_circle", "--json", cwd=deep, env=env)
    assert found.returncode == 0, found.stderr
    problems = _problems(found.stderr)
    assert len(problems) == 2, found.stderr
    assert len(set(problems)) == 2
    data = json.loads(found.stdout)
    assert data["root"] == str(root.resolve())  # the index four folders up
    assert [hit["name"] for hit in data["symbols"]] == ["area_of_circle"]


def test_search_without_an_index_says_so_once(
    workspace: tuple[Path, Path, dict[str, str]],
) -> None:
    _root, deep, env = workspace
    result = ouzel("search", "anything", cwd=deep, env=env)
    assert result.returncode == 1
    assert "no usable index" in result.stderr and "run `ouzel index" in result.stderr
    assert len(_problems(result.stderr)) == len(set(_problems(result.stderr))) == 2


def test_doctor_reports_each_settings_problem_once(
    workspace: tuple[Path, Path, dict[str, str]],
) -> None:
    root, deep, env = workspace
    result = ouzel("doctor", "--json", cwd=deep, env=env)
    problems = _problems(result.stderr)
    assert len(problems) == len(set(problems)) == 2, result.stderr
    assert any(str(root / ".ouzel" / "config.toml") in p for p in problems)
    assert json.loads(result.stdout), "the checks still run with the defaults"


def test_roots(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    inner = root / "a" / "b"
    inner.mkdir(parents=True)
    assert find_workspace_root(inner) is None
    (root / ".git").mkdir()
    assert find_workspace_root(inner) == root.resolve()
    config = IndexConfig()
    assert find_index_root(inner, config) is None
    (root / ".ouzel" / "index").mkdir(parents=True)
    (root / ".ouzel" / "index" / "meta.json").write_text("{}")
    assert find_index_root(inner, config) == root.resolve()
    assert find_index_root(inner, config, stop=root / "a") is None  # not above `stop`
