"""When no model can serve a chat, the error says why (the router's skip reasons)."""

from __future__ import annotations

from ouzel.server.app import build_engine, build_session
from ouzel.server.settings import ModelProfile, Settings


def test_the_reason_names_each_skipped_profile() -> None:
    engine = build_engine()
    try:
        session = build_session(engine)
        settings = Settings(
            models={
                "remote": ModelProfile(
                    backend="openai", base_url="https://gpu.example.com/v1", api_key_env="K"
                )
            }
        )
        settings.routing.chat = ["remote"]
        reason = session.models.why_unavailable("chat", settings)
        assert "'remote' is skipped" in reason
        assert "privacy.allow_remote" in reason
        assert reason.endswith("(see `routing.chat` and `models.*`)")
        settings.routing.chat = []
        assert session.models.why_unavailable("chat", settings) == (
            "see `routing.chat` and `models.*`"
        )
    finally:
        engine.close()
