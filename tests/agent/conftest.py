from __future__ import annotations

import sys
from pathlib import Path

# Plain helper modules: tests/agent/agent_fixtures.py, and the scripted OpenAI server of
# tests/inference.
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
