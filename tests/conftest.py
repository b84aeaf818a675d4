from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ouzel.inference import catalog

# tests/rpc.py and friends are plain helper modules.
sys.path.insert(0, str(Path(__file__).parent))

# The isolated cache below must not hide the installed models (`ouzel models install`):
# tests and the servers they start find them through OUZEL_MODELS_DIR.
os.environ.setdefault(catalog.MODELS_DIR_ENV, str(catalog.models_dir()))


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Keep user config/state/cache of in-process code inside a temporary folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    return home
