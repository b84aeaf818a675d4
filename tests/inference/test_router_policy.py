"""Routing policy with fake backends: order, fallback, notices, breaker, privacy, warm-up."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fake_backend import FakeBackend

from ouzel.inference.backend import Backend
from ouzel.inference.router import Notices, Router, default_backend_factory
from ouzel.inference.types import (
    BackendError,
    BackendUnavailable,
    BackendWarming,
    CancelToken,
    ChatChunk,
    ChatMessage,
    CompletionRequest,
)
from ouzel.server.settings import ModelProfile, Settings, load_settings

REMOTE = {"backend": "openai", "base_url": "https://gpu.example.com/v1", "model": "coder"}
TUNNEL = {"backend": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "coder"}
SECRET = "ghp_" + "x" * 36


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def make_settings(**layers: Any) -> Settings:
    # The policy under test, not the defaults (chat's local profile is `local-chat`).
    base: dict[str, Any] = {
        "models": {"local": {"backend": "llama_cpp"}},
        "routing": {"chat": ["remote", "local"], "code_action": ["remote", "local"]},
    }
    loaded = load_settings(base, layers)
    assert loaded.problems == []
    return loaded.settings


class Rig:
    """A router whose every profile is a FakeBackend; records the notices sent."""

    def __init__(self) -> None:
        self.backends: dict[str, FakeBackend] = {}
        self.clock = Clock()
        self.router = Router(self.factory, clock=self.clock)
        self.sent: list[str] = []
        self.notices = Notices(self.sent.append)

    def factory(self, name: str, profile: ModelProfile) -> Backend:
        return self.backends.setdefault(name, FakeBackend(name, reply=f"{name} says hi"))

    def backend(self, name: str) -> FakeBackend:
        return self.backends.setdefault(name, FakeBackend(name, reply=f"{name} says hi"))

    async def chat(self, settings: Settings, text: str = "hello") -> list[ChatChunk]:
        chunks = []
        async for chunk in self.router.stream_chat(
            settings, "chat", [ChatMessage("user", text)], [], CancelToken(), notices=self.notices
        ):
            chunks.append(chunk)
        return chunks

    async def complete(self, settings: Settings, prompt: str = "def f(") -> str:
        result = await self.router.complete(
            settings, "inline_completion", CompletionRequest(prompt), CancelToken(), self.notices
        )
        return result.backend


@pytest.fixture
def rig() -> Rig:
    return Rig()


async def test_completion_stays_local_and_chat_goes_remote(rig: Rig) -> None:
    settings = make_settings(models={"remote": REMOTE}, privacy={"allow_remote": True})
    assert await rig.complete(settings) == "local"
    chunks = await rig.chat(settings)
    assert " ".join(c.text for c in chunks if c.text) == "remote says hi"
    assert {c.backend for c in chunks} == {"remote"}
    assert rig.backend("remote").calls == 1 and rig.backend("local").calls == 1
    assert rig.sent == []


async def test_completion_goes_remote_only_when_no_local_model_is_usable(rig: Rig) -> None:
    settings = make_settings(models={"remote": TUNNEL})
    local = rig.backend("local")
    local.state, local.error = "failed", "model file not found: /models/x.gguf"
    assert await rig.complete(settings) == "remote"
    assert local.calls == 0
    assert len(rig.sent) == 1
    assert "model file not found" in rig.sent[0] and "'remote'" in rig.sent[0]


async def test_unconfigured_remote_is_skipped_silently(rig: Rig) -> None:
    settings = make_settings()  # default chat order is ["remote", "local"]; no remote
    chunks = await rig.chat(settings)
    assert chunks[-1].done and chunks[0].backend == "local"
    assert rig.sent == []


async def test_remote_down_falls_back_with_one_notice_then_breaker_then_recovery(rig: Rig) -> None:
    settings = make_settings(
        models={"remote": TUNNEL}, routing={"failure_threshold": 3, "retry_after_s": 10}
    )
    remote = rig.backend("remote")
    down = BackendUnavailable("remote: cannot reach http://127.0.0.1:8000/v1 (refused)")
    remote.fail_next(down, down, down)
    for _ in range(3):
        chunks = await rig.chat(settings)
        assert chunks[0].backend == "local"
    assert remote.calls == 3
    assert len(rig.sent) == 1 and "refused" in rig.sent[0] and "'local'" in rig.sent[0]
    # The breaker is open now: the remote is not even tried.
    await rig.chat(settings)
    assert remote.calls == 3
    status = rig.router.status(settings)
    assert status["routes"]["chat"]["now"] == "local"
    assert "down" in status["routes"]["chat"]["skipped"]["remote"]
    assert status["profiles"]["remote"]["breaker"] == "open"
    # After the wait, one trial; it succeeds and the remote is back.
    rig.clock.now += 10
    chunks = await rig.chat(settings)
    assert chunks[0].backend == "remote" and remote.calls == 4
    assert rig.sent[-1] == "chat: back on 'remote'."
    assert rig.router.status(settings)["profiles"]["remote"]["breaker"] == "closed"


async def test_failed_trial_keeps_it_open(rig: Rig) -> None:
    settings = make_settings(
        models={"remote": TUNNEL}, routing={"failure_threshold": 1, "retry_after_s": 10}
    )
    remote = rig.backend("remote")
    remote.fail_next(BackendError("boom"), BackendError("boom"))
    await rig.chat(settings)
    rig.clock.now += 10
    await rig.chat(settings)  # the trial fails: open for 20 s now
    rig.clock.now += 10
    await rig.chat(settings)
    assert remote.calls == 2


async def test_no_fallback_when_disallowed(rig: Rig) -> None:
    settings = make_settings(models={"remote": TUNNEL}, routing={"allow_fallback": False})
    rig.backend("remote").fail_next(BackendUnavailable("remote: cannot reach it"))
    with pytest.raises(BackendUnavailable) as info:
        await rig.chat(settings)
    assert "cannot reach it" in str(info.value) and "allow_fallback" in str(info.value)
    assert rig.backend("local").calls == 0


async def test_remote_needs_allow_remote(rig: Rig) -> None:
    settings = make_settings(models={"remote": REMOTE})
    chunks = await rig.chat(settings)
    assert chunks[0].backend == "local"
    assert rig.backend("remote").calls == 0
    assert len(rig.sent) == 1 and "privacy.allow_remote" in rig.sent[0]
    await rig.chat(settings)
    assert len(rig.sent) == 1  # the same situation is not announced twice
    strict = make_settings(models={"remote": REMOTE}, routing={"allow_fallback": False})
    with pytest.raises(BackendUnavailable, match=r"privacy\.allow_remote"):
        await rig.chat(strict)


async def test_an_ssh_tunnel_marked_remote_needs_allow_remote_too(rig: Rig) -> None:
    settings = make_settings(models={"remote": {**TUNNEL, "location": "remote"}})
    await rig.chat(settings)
    assert rig.backend("remote").calls == 0


async def test_secrets_are_redacted_for_remote_profiles_only(rig: Rig) -> None:
    settings = make_settings(models={"remote": REMOTE}, privacy={"allow_remote": True})
    await rig.chat(settings, f"why is {SECRET} rejected?")
    sent = rig.backend("remote").conversations[0][0].content
    assert SECRET not in sent and "[REDACTED:github-token]" in sent
    await rig.complete(settings, f"token = '{SECRET}'")
    assert rig.backend("local").prompts == [f"token = '{SECRET}'"]
    off = make_settings(
        models={"remote": REMOTE}, privacy={"allow_remote": True, "redact_secrets": False}
    )
    await rig.chat(off, SECRET)
    assert rig.backend("remote").conversations[-1][0].content == SECRET


async def test_loading_model_is_skipped_but_not_counted(rig: Rig) -> None:
    settings = make_settings(models={"remote": TUNNEL}, routing={"failure_threshold": 1})
    remote = rig.backend("remote")
    remote.fail_next(*[BackendWarming("remote: the server is still loading its model")] * 4)
    for _ in range(4):
        chunks = await rig.chat(settings)
        assert chunks[0].backend == "local"
    assert remote.calls == 4  # never skipped: loading is not a failure
    profile = rig.router.status(settings)["profiles"]["remote"]
    assert profile["breaker"] == "closed" and profile["state"] == "loading"
    chunks = await rig.chat(settings)
    assert chunks[0].backend == "remote"


async def test_stream_broken_after_output_is_an_error_not_a_fallback(rig: Rig) -> None:
    settings = make_settings(models={"remote": TUNNEL})
    rig.backend("remote").fail_after_first_chunk = BackendError("remote: connection broke")
    seen = []
    with pytest.raises(BackendError, match="connection broke"):
        async for chunk in rig.router.stream_chat(
            settings, "chat", [ChatMessage("user", "hi")], [], CancelToken()
        ):
            seen.append(chunk)
    assert [c.text for c in seen] == ["remote"]
    assert rig.backend("local").calls == 0


async def test_consumer_stopping_early_closes_the_backend_stream(rig: Rig) -> None:
    settings = make_settings(models={"remote": TUNNEL})
    stream = rig.router.stream_chat(
        settings, "chat", [ChatMessage("user", "hi")], [], CancelToken()
    )
    first = await stream.__anext__()
    await stream.aclose()
    assert first.text == "remote"
    health = rig.router.status(settings)["profiles"]["remote"]
    assert health["failures"] == 0


async def test_first_request_is_warm_up_not_a_speed_sample(rig: Rig) -> None:
    settings = make_settings()
    await rig.complete(settings)
    profile = rig.router.status(settings)["profiles"]["local"]
    assert profile["timeToFirstTokenMs"] is None and profile["warmupMs"] is not None
    await rig.complete(settings)
    assert rig.router.status(settings)["profiles"]["local"]["timeToFirstTokenMs"] == 10.0


async def test_embeddings_route(rig: Rig) -> None:
    settings = make_settings()
    assert await rig.router.embed(settings, ["ab", "abcd"]) == [[2.0], [4.0]]


async def test_nothing_usable_is_one_clear_error(rig: Rig) -> None:
    settings = make_settings(models={"remote": TUNNEL})
    rig.backend("remote").fail_next(BackendUnavailable("remote: cannot reach it"))
    rig.backend("local").fail_next(BackendUnavailable("model file not found: /m.gguf"))
    with pytest.raises(BackendUnavailable) as info:
        await rig.chat(settings)
    message = str(info.value)
    assert message.startswith("chat: no model could serve")
    assert "cannot reach it" in message and "model file not found" in message


async def test_settings_change_rebuilds_only_the_changed_profile(rig: Rig) -> None:
    settings = make_settings(models={"remote": TUNNEL})
    await rig.chat(settings)
    local = rig.router.entry("local", settings.models["local"], settings)
    remote = rig.router.entry("remote", settings.models["remote"], settings)
    changed = make_settings(models={"remote": {**TUNNEL, "model": "other"}})
    assert rig.router.entry("local", changed.models["local"], changed) is local
    other = rig.router.entry("remote", changed.models["remote"], changed)
    assert other is not remote and other.profile.model == "other"
    # Two workspaces alternating between the two configurations keep both backends.
    assert rig.router.entry("remote", settings.models["remote"], settings) is remote


def test_a_new_local_model_configuration_frees_the_old_model() -> None:
    closed: list[str] = []

    class Closing(FakeBackend):
        def close(self) -> None:
            closed.append(self.reply)

    router = Router(lambda name, profile: Closing(name, reply=str(profile.n_threads)))
    first = make_settings(models={"local": {"backend": "llama_cpp", "n_threads": 1}})
    second = make_settings(models={"local": {"backend": "llama_cpp", "n_threads": 2}})
    router.entry("local", first.models["local"], first)
    router.entry("local", second.models["local"], second)
    assert closed == ["1"]


def test_misconfigured_openai_profiles_say_why(monkeypatch: pytest.MonkeyPatch) -> None:
    router = Router(default_backend_factory)
    monkeypatch.delenv("OUZEL_TEST_KEY", raising=False)
    settings = make_settings(
        models={
            "nourl": {"backend": "openai"},
            "nokey": {**TUNNEL, "api_key_env": "OUZEL_TEST_KEY"},
            "badurl": {"backend": "openai", "base_url": "ftp://gpu/v1"},
        },
        routing={"chat": ["nourl", "nokey", "badurl"]},
    )
    reasons = {c.name: c.skip or "" for c in router.plan(settings, "chat")}
    assert "base_url" in reasons["nourl"]
    assert "OUZEL_TEST_KEY is not set" in reasons["nokey"]
    assert "http://" in reasons["badurl"]
    monkeypatch.setenv("OUZEL_TEST_KEY", "k")
    assert {c.name: c.skip for c in router.plan(settings, "chat")}["nokey"] is None


async def test_chat_waits_for_a_loading_local_model_but_ghost_text_does_not(rig: Rig) -> None:
    settings = make_settings()
    local = rig.backend("local")
    local.state = "loading"
    with pytest.raises(BackendWarming, match="is loading its model"):
        await rig.complete(settings)
    assert local.state == "loading"
    chunks = await rig.chat(settings)
    assert chunks[0].text == "local" and local.state == "ready"
    assert rig.sent == ["chat: waiting for 'local' to load its model."]
    assert rig.router.status(settings)["profiles"]["local"]["failures"] == 0
    await rig.chat(settings)
    assert len(rig.sent) == 1  # no "back on 'local'": it never left


async def test_pinned_backend_keeps_to_its_profile_but_goes_through_the_router(
    rig: Rig,
) -> None:
    settings = make_settings(
        models={"gpu": REMOTE, "remote": TUNNEL},
        routing={"inline_completion": ["gpu", "remote"]},
    )
    skipped = rig.router.plan(settings, "inline_completion")[0]
    pinned = rig.router.pinned(settings, "inline_completion", "remote", rig.notices, [skipped])
    assert pinned.reply == "remote says hi"  # the backend's own attributes show through
    assert rig.sent == [
        "completion: 'gpu' is skipped: it is remote (gpu.example.com) and "
        "`privacy.allow_remote` is off; answering with 'remote' instead."
    ]
    result = await pinned.complete(CompletionRequest("x"), CancelToken())
    assert result.backend == "remote"
    rig.backend("remote").fail_next(BackendUnavailable("remote: cannot reach it"))
    with pytest.raises(BackendUnavailable, match="cannot reach it"):
        await pinned.complete(CompletionRequest("y"), CancelToken())
    assert rig.backend("gpu").calls == 0 and rig.backend("local").calls == 0
    assert rig.router.status(settings)["profiles"]["remote"]["failures"] == 1
    await pinned.complete(CompletionRequest("z"), CancelToken())
    assert len(rig.sent) == 1  # still the same situation: no new notice


def test_probes_go_only_where_the_settings_allow() -> None:
    router = Router(default_backend_factory)
    blocked = make_settings(models={"gpu": REMOTE, "tunnel": TUNNEL})
    router.status(blocked)
    assert [health.name for _, health in router.backends.probe_targets()] == ["tunnel"]
    allowed = make_settings(
        models={"gpu": REMOTE, "tunnel": TUNNEL}, privacy={"allow_remote": True}
    )
    router.status(allowed)
    assert sorted(health.name for _, health in router.backends.probe_targets()) == ["gpu", "tunnel"]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
async def test_log_names_the_serving_profile_and_the_prompt_only_at_debug(
    rig: Rig, level: int
) -> None:
    logger = logging.getLogger("ouzel.inference.router")
    records = _Records()
    logger.addHandler(records)
    previous = logger.level
    logger.setLevel(level)
    try:
        await rig.complete(make_settings(), "def secret_sauce(")
        await rig.chat(make_settings(), "what is secret_sauce?")
    finally:
        logger.removeHandler(records)
        logger.setLevel(previous)
    text = "\n".join(records.lines)
    assert "chat served by 'local'" in text
    # ghost text is served on every pause in typing: logged only at debug
    assert ("completion served by 'local'" in text) is (level == logging.DEBUG)
    assert ("secret_sauce" in text) is (level == logging.DEBUG)


def test_policy_and_unrelated_settings_never_rebuild_a_backend() -> None:
    built: list[str] = []

    def factory(name: str, profile: ModelProfile) -> Backend:
        built.append(name)
        return FakeBackend(name)

    router = Router(factory)
    one = make_settings(
        models={"local": {"backend": "llama_cpp", "read_timeout_s": 40, "notes": "fast"}}
    )
    two = make_settings(
        models={"local": {"backend": "llama_cpp", "location": "local", "notes": "mine"}},
        routing={"allow_fallback": False, "failure_threshold": 5, "probe_interval_s": 5},
        privacy={"redact_secrets": False},
    )
    entries = {
        id(router.entry("local", s.models["local"], s)) for _ in range(3) for s in (one, two)
    }
    assert built == ["local"] and len(entries) == 1
    other_model = make_settings(models={"local": {"backend": "llama_cpp", "n_threads": 3}})
    router.entry("local", other_model.models["local"], other_model)
    assert built == ["local", "local"]  # what the backend is built from did change


def test_probes_follow_each_callers_privacy_not_the_last_one() -> None:
    clock = Clock()
    router = Router(default_backend_factory, clock=clock)
    allowed = make_settings(models={"gpu": REMOTE}, privacy={"allow_remote": True})
    blocked = make_settings(models={"gpu": REMOTE})
    router.status(allowed)
    router.status(blocked)  # another session that does not allow it: the first one still does
    assert [health.name for _, health in router.backends.probe_targets()] == ["gpu"]
    clock.now += 601  # nobody who allows it asked for it in ten minutes
    router.status(blocked)
    assert router.backends.probe_targets() == []
