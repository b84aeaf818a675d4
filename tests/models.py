"""Where the tests find the installed local models (`ouzel models install`, the catalog)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ouzel.inference import catalog

QWEN_05B = "qwen2.5-coder-0.5b"
QWEN_15B = "qwen2.5-coder-1.5b"

# Read at import, before tests point XDG_CACHE_HOME at a temporary folder.
MODELS_DIR = catalog.models_dir()


def models_dir() -> Path:
    return MODELS_DIR


def model_file(name: str) -> Path:
    """The GGUF of catalog model `name`, or skip the test saying how to install it."""
    path = MODELS_DIR / catalog.MODELS[name].file_name
    if not path.is_file():
        pytest.skip(f"{path} is missing: run `ouzel models install {name}`")
    return path


def installed_model(name: str) -> Path:
    """The GGUF of catalog model `name` (size checked); skips when it is not installed."""
    try:
        return catalog.model_path(name)
    except catalog.ModelNotInstalled as exc:
        pytest.skip(f"{exc} (`./scripts/test` installs it)")
