"""A profile with two `endpoints`: two real llama_cpp.server processes take turns; killing
one, requests keep being answered by the other (its breaker ejects the dead one)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from ouzel.inference.router import Router
from ouzel.inference.types import CancelToken, CompletionRequest
from ouzel.server.settings import load_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from real_servers import LlamaServer

pytestmark = pytest.mark.e2e

KEY = "e2e-endpoints-key"
KEY_VARIABLE = "OUZEL_E2E_ENDPOINTS_KEY"


async def test_requests_spread_over_endpoints_and_survive_one_dying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    with (
        LlamaServer(KEY, tmp_path / "a.log") as first,
        LlamaServer(KEY, tmp_path / "b.log") as second,
    ):
        loaded = load_settings(
            {
                "models": {
                    "remote": {
                        "backend": "openai",
                        "endpoints": [first.base_url, second.base_url],
                        "api_key_env": KEY_VARIABLE,
                        "read_timeout_s": 30,
                    }
                },
                "routing": {"inline_completion": ["remote"], "allow_fallback": True},
            },
            {},
        )
        assert loaded.problems == []
        router = Router()
        served: list[str] = []
        router.on_served.append(lambda task, backend, fallback, total_s: served.append(backend))

        async def complete() -> Any:
            return await router.complete(
                loaded.settings,
                "inline_completion",
                CompletionRequest("def add(a, b):\n    return", max_tokens=4),
                CancelToken(),
            )

        try:
            for _ in range(4):
                assert (await complete()).text is not None
            assert sorted(set(served)) == ["remote@0", "remote@1"], served
            assert served[:4].count("remote@0") == 2, "the two endpoints take turns"
            first.kill()
            served.clear()
            for _ in range(4):
                result = await complete()
                assert result.backend == "remote@1", result
            assert served == ["remote@1"] * 4
        finally:
            await router.aclose()
