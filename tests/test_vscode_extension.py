"""The VS Code extension's own unit tests (node's test runner) and its type check.

They live in clients/vscode/test/ and need no VS Code; scripts/setup-vscode-e2e installs
their npm dependencies.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parent.parent / "clients" / "vscode"


def run_npm(*args: str) -> subprocess.CompletedProcess[str]:
    if not (EXTENSION / "node_modules" / ".bin" / "tsc").exists():
        pytest.fail("clients/vscode has no node_modules: run scripts/setup-vscode-e2e first")
    npm = shutil.which("npm")
    assert npm is not None, "npm is missing: run scripts/setup-vscode-e2e first"
    return subprocess.run(
        [npm, *args],
        cwd=EXTENSION,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_extension_unit_tests_pass() -> None:
    result = run_npm("test", "--silent")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "# fail 0" in output, output
    passed = [line for line in output.splitlines() if line.startswith("# pass ")]
    assert passed and int(passed[0].split()[-1]) >= 20, output


def test_extension_type_checks() -> None:
    result = run_npm("run", "typecheck", "--silent")
    assert result.returncode == 0, result.stdout + result.stderr
