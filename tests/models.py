"""Where the tests find the Qwen2.5-Coder GGUFs (assembled by `ouzel models install`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FILES = {
    "qwen2.5-coder-0.5b": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "qwen2.5-coder-1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
}


def _models_dir() -> Path:
    override = os.environ.get("OUZEL_MODELS_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("ouzel", appauthor=False)) / "models"


# Read at import, before tests point XDG_CACHE_HOME at a temporary folder.
MODELS_DIR = _models_dir()


def models_dir() -> Path:
    return MODELS_DIR


def model_file(name: str) -> Path:
    """The GGUF of catalog model `name`, or skip the test saying how to install it."""
    path = models_dir() / FILES[name]
    if not path.is_file():
        pytest.skip(f"{path} is missing: run `ouzel models install {name}`")
    return path
