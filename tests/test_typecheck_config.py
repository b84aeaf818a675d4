"""scripts/typecheck with the repository's [tool.mypy] sees across `ouzel.*` modules.

The folders install as `ouzel.server`, `ouzel.indexer` and `ouzel.inference` with no
`ouzel/` folder, so a plain mypy run resolved every `ouzel.*` import to Any and missed
calls to functions that no longer exist. This runs the real script and the real
pyproject.toml on a tiny repository laid out the same way, with deliberate mistakes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MYPY = Path(sys.executable).with_name("mypy")

SETTINGS = """\
def known(count: int) -> int:
    return count
"""

USES = """\
from ouzel.server.settings import known


def fine() -> int:
    return known(1)


def gone() -> int:
    return known_no_more(1)  # noqa: F821


def wrong_type() -> int:
    return known("one")


def missing_attribute() -> int:
    from ouzel.server import settings

    return settings.renamed(1)
"""

MISSING_MODULE = """\
from ouzel.server.vanished import anything

value: int = anything
"""


def _tiny_repository(root: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "typecheck", root / "scripts" / "typecheck")
    for folder in ("server", "indexer", "inference"):
        (root / folder).mkdir()
        (root / folder / "__init__.py").write_text("")
    (root / "server" / "settings.py").write_text(SETTINGS)
    (root / "indexer" / "uses.py").write_text(USES)
    (root / "inference" / "missing.py").write_text(MISSING_MODULE)


def _errors(output: str) -> dict[str, str]:
    """`file:line` -> message of each mypy error, with paths inside the tiny repository."""
    errors = {}
    for line in output.splitlines():
        where, sep, message = line.partition(": error: ")
        if sep:
            errors[where.replace(os.sep, "/")] = message
    return errors


def test_cross_module_mistakes_are_reported(tmp_path: Path) -> None:
    _tiny_repository(tmp_path)
    run = subprocess.run(
        [str(tmp_path / "scripts" / "typecheck")],
        capture_output=True,
        text=True,
        env={**os.environ, "MYPY": str(MYPY)},
        timeout=240,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    errors = _errors(output)
    uses = "indexer/uses.py"  # the real file, not its .typecheck/ouzel link
    assert set(errors) == {
        f"{uses}:9",
        f"{uses}:13",
        f"{uses}:19",
        "inference/missing.py:1",
    }, output
    assert 'Name "known_no_more" is not defined' in errors[f"{uses}:9"]
    assert 'incompatible type "str"; expected "int"' in errors[f"{uses}:13"]
    assert 'Module has no attribute "renamed"' in errors[f"{uses}:19"]
    # A missing ouzel module is an error, never a silent Any.
    assert "ouzel.server.vanished" in errors["inference/missing.py:1"]
    assert (tmp_path / ".typecheck" / "ouzel" / "server").resolve() == tmp_path / "server"
