"""The path sandbox on its own: containment, secrets, protected files, safe writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from agent_fixtures import OUTSIDE_CANARY, Layout, make_layout

from ouzel.server.agent.sandbox import Sandbox, SandboxError, protection_risk, sha256
from ouzel.server.settings import DEFAULT_SECRET_GLOBS


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return make_layout(tmp_path)


@pytest.fixture
def sandbox(layout: Layout) -> Sandbox:
    return Sandbox([layout.ws], DEFAULT_SECRET_GLOBS)


def test_plain_paths_resolve_inside(sandbox: Sandbox, layout: Layout) -> None:
    resolved = sandbox.check_read("src/app.py")
    assert resolved.relative == "src/app.py" and resolved.root == str(layout.ws.resolve())
    assert sandbox.check_read(str(layout.ws / "src" / "app.py")).relative == "src/app.py"
    assert sandbox.check_read(".", want_dir=True).relative == ""
    assert sandbox.check_read("sub/deep/../../src/app.py").relative == "src/app.py"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("../outside/secret.txt", "outside the workspace"),
        ("../ws-evil/file.txt", "outside the workspace"),
        ("link_out.txt", "outside the workspace"),
        ("linkdir/secret.txt", "outside the workspace"),
        ("chain1", "outside the workspace"),
        ("sub/rel_out/secret.txt", "outside the workspace"),
        ("~/secret.txt", "`~` is not expanded"),
        ("src/app.py\0../../outside", "NUL"),
        ("..\\outside\\secret.txt", "separator"),
        ("", "empty"),
        (".env", "secret"),
        ("env_link", "secret"),
        ("keys/id_rsa", "secret"),
        ("sub/.ssh/config", "secret"),
        ("hard.txt", "hard links"),
    ],
)
def test_refusals_name_the_reason(sandbox: Sandbox, raw: str, reason: str) -> None:
    with pytest.raises(SandboxError, match=reason):
        sandbox.read_bytes(raw)


def test_sibling_with_the_roots_name_as_prefix_is_outside(sandbox: Sandbox, layout: Layout) -> None:
    with pytest.raises(SandboxError, match="outside"):
        sandbox.resolve(str(layout.evil / "file.txt"))


def test_new_file_under_a_symlinked_folder_is_outside(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError, match="outside"):
        sandbox.check_write("linkdir/new.txt")
    with pytest.raises(SandboxError, match="outside"):
        sandbox.check_write("dangling")  # a dangling link to a missing file outside


def test_new_file_in_new_folders_is_inside(sandbox: Sandbox, layout: Layout) -> None:
    resolved = sandbox.check_write("pkg/sub/new.py")
    assert not resolved.exists and resolved.relative == "pkg/sub/new.py"
    assert sandbox.missing_folders(resolved) == ["pkg", "pkg/sub"]
    sandbox.write_bytes(resolved, b"x = 1\n", None)
    assert (layout.ws / "pkg" / "sub" / "new.py").read_bytes() == b"x = 1\n"


def test_writes_are_atomic_and_keep_the_mode(sandbox: Sandbox, layout: Layout) -> None:
    target = layout.ws / "src" / "app.py"
    target.chmod(0o750)
    resolved = sandbox.check_write("src/app.py")
    before = sandbox.read_state(resolved)
    assert before is not None
    sandbox.write_bytes(resolved, b"new\n", before.sha256)
    assert target.read_bytes() == b"new\n"
    assert target.stat().st_mode & 0o777 == 0o750
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_write_refuses_a_file_changed_since_the_check(sandbox: Sandbox, layout: Layout) -> None:
    resolved = sandbox.check_write("src/app.py")
    before = sandbox.read_state(resolved)
    assert before is not None
    (layout.ws / "src" / "app.py").write_text("the user typed this\n")
    with pytest.raises(SandboxError, match="changed since"):
        sandbox.write_bytes(resolved, b"agent\n", before.sha256)
    assert (layout.ws / "src" / "app.py").read_text() == "the user typed this\n"


def test_a_folder_swapped_for_a_symlink_after_the_check_is_not_followed(
    sandbox: Sandbox, layout: Layout
) -> None:
    resolved = sandbox.check_write("sub/deep/notes.txt")
    before = sandbox.read_state(resolved)
    assert before is not None
    os.rename(layout.ws / "sub" / "deep", layout.base / "moved")
    os.symlink(layout.outside, layout.ws / "sub" / "deep")
    (layout.outside / "notes.txt").write_text(f"{OUTSIDE_CANARY}\n")
    with pytest.raises(SandboxError):
        sandbox.write_bytes(resolved, b"agent\n", before.sha256)
    assert (layout.outside / "notes.txt").read_text() == f"{OUTSIDE_CANARY}\n"


def test_a_file_swapped_for_a_symlink_is_replaced_not_written_through(
    sandbox: Sandbox, layout: Layout
) -> None:
    resolved = sandbox.check_write("README.md")
    before = sandbox.read_state(resolved)
    assert before is not None
    os.unlink(layout.ws / "README.md")
    os.symlink(layout.outside / "secret.txt", layout.ws / "README.md")
    with pytest.raises(SandboxError):
        sandbox.write_bytes(resolved, b"agent\n", before.sha256)
    assert (layout.outside / "secret.txt").read_text().startswith(OUTSIDE_CANARY)


def test_hard_links_are_never_written(sandbox: Sandbox, layout: Layout) -> None:
    with pytest.raises(SandboxError, match="hard links"):
        sandbox.check_write("hard.txt")
    assert (layout.outside / "secret.txt").read_text().startswith(OUTSIDE_CANARY)


@pytest.mark.parametrize(
    "path",
    [
        ".vscode/settings.json",
        ".VSCode/settings.json",
        ".v\u017fcode/tasks.json",  # long s case-folds to s
        "sub/.vscode/launch.json",
        ".git/hooks/pre-commit",
        ".git/config",
        ".ouzel/config.toml",
        ".github/workflows/ci.yml",
        ".nvim.lua",
        ".exrc",
        ".envrc",
        ".bashrc",
        "package.json",
        "Cargo.lock",
        "requirements-dev.txt",
        "pyproject.toml",
        "tests/conftest.py",
        "lib/evil.pth",
        "Makefile",
    ],
)
def test_protected_files_name_their_risk(path: str) -> None:
    assert protection_risk(path)


def test_protection_is_checked_on_the_real_path(sandbox: Sandbox, layout: Layout) -> None:
    (layout.ws / ".vscode").mkdir()
    (layout.ws / ".vscode" / "settings.json").write_text("{}")
    os.symlink(layout.ws / ".vscode" / "settings.json", layout.ws / "innocent.json")
    assert sandbox.check_write("innocent.json").protected
    assert sandbox.check_write("src/../.vscode/settings.json").protected
    assert not sandbox.check_write("src/app.py").protected


def test_user_protected_patterns_add_to_the_list(layout: Layout) -> None:
    sandbox = Sandbox([layout.ws], DEFAULT_SECRET_GLOBS, protected=["deploy/*.sh"])
    assert sandbox.check_write("deploy/run.sh").protected
    assert sandbox.check_write(".vscode/x.json").protected


def test_several_roots(layout: Layout, tmp_path: Path) -> None:
    other = tmp_path / "second"
    other.mkdir()
    (other / "b.txt").write_text("b\n")
    sandbox = Sandbox([layout.ws, other], DEFAULT_SECRET_GLOBS)
    resolved, data = sandbox.read_bytes(str(other / "b.txt"))
    assert data == b"b\n" and resolved.root == str(other.resolve())
    resolved = sandbox.check_write(str(other / "c.txt"))
    sandbox.write_bytes(resolved, b"c\n", None)
    assert (other / "c.txt").read_bytes() == b"c\n"


def test_walking_never_follows_symlinks_nor_yields_secrets(sandbox: Sandbox) -> None:
    root = sandbox.check_read(".", want_dir=True)
    paths = [path for path, _ in sandbox.walk_files(root)]
    assert "src/app.py" in paths and "README.md" in paths
    assert not [p for p in paths if "link" in p or "chain" in p or "env" in p or "id_rsa" in p]
    assert "hard.txt" not in paths


def test_delete_only_what_the_agent_wrote(sandbox: Sandbox, layout: Layout) -> None:
    resolved = sandbox.check_write("made.txt")
    sandbox.write_bytes(resolved, b"agent\n", None)
    (layout.ws / "made.txt").write_text("user\n")
    with pytest.raises(SandboxError, match="changed"):
        sandbox.delete_file(resolved, sha256(b"agent\n"))
    assert (layout.ws / "made.txt").exists()
