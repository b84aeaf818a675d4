"""`ouzel index` and `ouzel search` as the user runs them (real processes, real index)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rpc import server_env

pytestmark = pytest.mark.e2e

OUZEL = [sys.executable, "-c", "from ouzel.server.cli import main; raise SystemExit(main())"]

FILES = {
    "pkg/accounts.py": "class AccountStore:\n    def getUserName(self):\n        return 'name'\n",
    "pkg/billing.rs": "pub fn charge_invoice(amount: u64) -> u64 { amount }\n",
    "README.md": "# Accounts\n\nHow billing of invoices works.\n",
    "id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\n",
}


def ouzel(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OUZEL, *args],
        cwd=cwd,
        env=server_env(cwd.parent),
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("index-cli") / "ws"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    first = ouzel("index", str(root), "--json", cwd=root)
    assert first.returncode == 0, first.stderr
    return {"root": root, "first": json.loads(first.stdout)}


def test_index_json_summary(indexed: dict[str, Any]) -> None:
    summary = indexed["first"]["summary"]
    assert (summary["scanned"], summary["indexed"], summary["errors"]) == (3, 3, 0)
    assert summary["skipped"]["secret"] == 1
    assert summary["symbols"] == 4 and summary["lines"] == 7  # class, method, fn, heading
    status = indexed["first"]["status"]
    assert status["files_indexed"] == 3 and status["writable"] is True
    assert indexed["first"]["index_bytes"] > 0


def test_second_run_is_incremental_and_prints_a_table(indexed: dict[str, Any]) -> None:
    root: Path = indexed["root"]
    (root / "pkg" / "new.py").write_text("def brand_new():\n    pass\n")
    out = ouzel("index", str(root), cwd=root)
    assert out.returncode == 0, out.stderr
    for label in ("files found", "indexed now", "unchanged", "symbols", "index folder", "speed"):
        assert label in out.stdout
    data = json.loads(ouzel("index", str(root), "--json", cwd=root).stdout)
    assert (data["summary"]["indexed"], data["summary"]["scanned"]) == (0, 4)


def test_search_symbols_json(indexed: dict[str, Any]) -> None:
    root: Path = indexed["root"]
    out = ouzel("search", "gUN", "--kind", "symbol", "--json", cwd=root / "pkg")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["root"] == str(root)  # found from a sub-folder
    (hit, *_) = data["symbols"]
    assert (hit["name"], hit["qualified_name"], hit["kind"]) == (
        "getUserName",
        "AccountStore.getUserName",
        "method",
    )
    assert (hit["path"], hit["name_start_line"], hit["name_start_col"]) == ("pkg/accounts.py", 1, 8)
    assert data["chunks"] == []


def test_search_chunks_and_limit(indexed: dict[str, Any]) -> None:
    root: Path = indexed["root"]
    data = json.loads(
        ouzel(
            "search",
            "billing invoices",
            "--kind",
            "chunk",
            "--json",
            "--limit",
            "1",
            "--root",
            str(root),
            cwd=root,
        ).stdout
    )
    assert [c["path"] for c in data["chunks"]] == ["README.md"]
    assert data["chunks"][0]["start_line"] == 0 and data["chunks"][0]["score"] > 0


def test_search_human_output_counts_lines_from_one(indexed: dict[str, Any]) -> None:
    root: Path = indexed["root"]
    out = ouzel("search", "charge_invoice", cwd=root)
    assert out.returncode == 0, out.stderr
    assert "pkg/billing.rs:1:8" in out.stdout
    assert "fn charge_invoice(amount: u64) -> u64" in out.stdout
    assert "chunks" in out.stdout
    nothing = ouzel("search", "qqqqqq_nothing", "--kind", "symbol", cwd=root)
    assert nothing.returncode == 1


def test_search_without_an_index_explains(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = ouzel("search", "anything", "--root", str(empty), cwd=empty)
    assert out.returncode == 1
    assert "run `ouzel index" in out.stderr


def test_index_refuses_the_file_system_root(tmp_path: Path) -> None:
    out = ouzel("index", "/", cwd=tmp_path)
    assert out.returncode == 2 and "file system root is not indexed" in out.stderr
