"""The completion pipeline with a scripted backend: newest wins, cancel, stale, cache, seams."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from completion_fakes import ScriptedBackend

from ouzel.inference.backend import Backend
from ouzel.inference.templates import TEMPLATES, ContextSnippet
from ouzel.server.app import build_engine
from ouzel.server.documents import Document, TextChange
from ouzel.server.features.completion import CompletionEngine
from ouzel.server.features.telemetry import read_events, summarize, telemetry_path
from ouzel.server.server import create_server
from ouzel.server.session import Session, Snapshot
from ouzel.server.settings import Settings

URI = "file:///work/geometry.py"
TEXT = "def area(width, height):\n    \n\nprint(area(2, 3))\n"
CURSOR = TEXT.index("    \n") + 4
BODY = "return width * height\n\nprint(area(2, 3))\n"


@pytest.fixture
def session() -> Iterator[Session]:
    server = create_server(build_engine())
    server.session.settings.completion.debounce_ms = 0
    server.session.completion.context_provider = None  # tests plug in their own
    yield server.session
    server.session.engine.close()


def use(session: Session, backend: ScriptedBackend) -> CompletionEngine:
    engine = session.completion

    async def source(task: str, settings: Settings) -> Backend | None:
        return backend

    engine.backend_source = source
    return engine


def open_doc(session: Session, text: str = TEXT) -> Document:
    return session.documents.open(URI, "python", 1, text)


def type_chars(session: Session, doc: Document, offset: int, chars: str) -> Document:
    line, column = doc.position(offset, "utf-16")
    return session.documents.change(
        doc.uri, doc.version + 1, [TextChange((line, column, line, column), chars)], "utf-16"
    )


async def test_a_function_body_gets_a_suggestion(session: Session) -> None:
    backend = ScriptedBackend(BODY)
    engine = use(session, backend)
    suggestion = await engine.suggest(session.snapshot(open_doc(session)), CURSOR)
    assert suggestion is not None and suggestion.text == "return width * height"
    assert suggestion.kind == "reused"  # 8 of 10 prompt tokens were cached
    request = backend.requests[0]
    assert request.prompt.startswith("# Path: geometry.py\ndef area(width, height):\n    ")
    assert request.prompt.endswith("    ") and "\n" not in request.stop  # a block may follow


async def test_typing_through_is_answered_from_the_cache(session: Session) -> None:
    backend = ScriptedBackend(BODY)
    engine = use(session, backend)
    doc = open_doc(session)
    first = await engine.suggest(session.snapshot(doc), CURSOR)
    assert first is not None
    doc = type_chars(session, doc, CURSOR, "ret")
    second = await engine.suggest(session.snapshot(doc), CURSOR + 3)
    assert second is not None and second.text == "urn width * height"
    assert second.kind == "cache" and second.id == first.id
    assert len(backend.requests) == 1  # no second model call


async def test_a_crlf_document_gets_a_block_without_carriage_returns(session: Session) -> None:
    crlf = TEXT.replace("\n", "\r\n")
    backend = ScriptedBackend("total = width * height\r\n    return total\r\n\r\nprint(")
    engine = use(session, backend)
    suggestion = await engine.suggest(
        session.snapshot(open_doc(session, crlf)), crlf.index("    \r\n") + 4
    )
    assert suggestion is not None
    assert suggestion.text == "total = width * height\n    return total"


async def test_a_newer_request_cancels_the_running_one(session: Session) -> None:
    backend = ScriptedBackend(BODY, char_delay=0.01)
    engine = use(session, backend)
    doc = open_doc(session)
    older = asyncio.ensure_future(engine.suggest(session.snapshot(doc), CURSOR))
    await backend.started.wait()
    newer = await engine.suggest(session.snapshot(doc), CURSOR)
    assert await older is None
    assert backend.cancelled == 1
    assert newer is not None and newer.text == "return width * height"


async def test_a_keystroke_cancels_and_the_old_result_is_dropped(session: Session) -> None:
    backend = ScriptedBackend(BODY, char_delay=0.01)
    engine = use(session, backend)
    doc = open_doc(session)
    pending = asyncio.ensure_future(engine.suggest(session.snapshot(doc), CURSOR))
    await backend.started.wait()
    type_chars(session, doc, CURSOR, "x")
    assert await pending is None
    assert backend.cancelled == 1


async def test_a_result_for_an_old_version_is_never_shown(session: Session) -> None:
    # Even a backend that ignores the cancel flag cannot get a stale result shown.
    backend = ScriptedBackend(BODY, char_delay=0.005, honour_cancel=False)
    engine = use(session, backend)
    doc = open_doc(session)
    pending = asyncio.ensure_future(engine.suggest(session.snapshot(doc), CURSOR))
    await backend.started.wait()
    type_chars(session, doc, CURSOR, "x")
    assert await pending is None


async def test_closing_the_document_cancels(session: Session) -> None:
    backend = ScriptedBackend(BODY, char_delay=0.01)
    engine = use(session, backend)
    pending = asyncio.ensure_future(engine.suggest(session.snapshot(open_doc(session)), CURSOR))
    await backend.started.wait()
    session.documents.close(URI)
    assert await pending is None and backend.cancelled == 1


async def test_cancelling_the_request_task_stops_the_generation(session: Session) -> None:
    backend = ScriptedBackend(BODY, char_delay=0.01)
    engine = use(session, backend)
    pending = asyncio.ensure_future(engine.suggest(session.snapshot(open_doc(session)), CURSOR))
    await backend.started.wait()
    pending.cancel()  # what pygls does on $/cancelRequest
    with pytest.raises(asyncio.CancelledError):
        await pending
    # The token the backend checks between tokens is set (an in-process generation on
    # its worker thread stops at the next token; see the end-to-end tests).
    assert backend.tokens[0].cancelled


async def test_debounce_lets_only_the_newest_keystroke_reach_the_model(session: Session) -> None:
    session.settings.completion.debounce_ms = 50
    backend = ScriptedBackend(BODY)
    engine = use(session, backend)
    doc = open_doc(session)
    first = asyncio.ensure_future(engine.suggest(session.snapshot(doc), CURSOR))
    await asyncio.sleep(0.01)
    second = await engine.suggest(session.snapshot(doc), CURSOR)
    assert await first is None and second is not None
    assert len(backend.requests) == 1


async def test_mid_word_with_a_prefix_only_model_asks_nothing(session: Session) -> None:
    backend = ScriptedBackend("anything")
    engine = use(session, backend)
    doc = open_doc(session, "value = fo(bar)\n")
    assert await engine.suggest(session.snapshot(doc), len("value = f")) is None
    assert backend.requests == []


async def test_fim_model_gets_prefix_and_suffix(session: Session) -> None:
    backend = ScriptedBackend("width * height", template=TEMPLATES["qwen"])
    engine = use(session, backend)
    doc = open_doc(session, "def area(width, height):\n    return \n")
    suggestion = await engine.suggest(
        session.snapshot(doc), len("def area(width, height):\n    return ")
    )
    assert suggestion is not None and suggestion.text == "width * height"
    prompt = backend.requests[0].prompt
    # A lone file: Qwen's file-level FIM prompt, no <|file_sep|>path header (issue 14).
    # The cursor's line up to the cursor ends the prefix (after the middle marker, the
    # 0.5B model often closed the middle at once: inference/templates.py).
    assert prompt == (
        "<|fim_prefix|>def area(width, height):\n    return <|fim_suffix|>\n<|fim_middle|>"
    )
    assert backend.requests[0].special_tokens


async def test_disabled_completions_make_no_call(session: Session) -> None:
    session.settings.completion.enabled = False
    backend = ScriptedBackend(BODY)
    assert await use(session, backend).suggest(session.snapshot(open_doc(session)), CURSOR) is None
    assert backend.requests == []


async def test_context_provider_snippets_enter_the_prompt(session: Session) -> None:
    backend = ScriptedBackend(BODY)
    engine = use(session, backend)
    snippet = ContextSnippet("shapes.py", "def square(side):\n    return side * side", "definition")

    async def provider(snap: Snapshot, offset: int) -> Sequence[ContextSnippet]:
        return [snippet]

    session.completion.context_provider = provider
    doc = open_doc(session)
    await engine.suggest(session.snapshot(doc), CURSOR)
    assert backend.requests[0].prompt.startswith(
        "# Context from shapes.py (definition):\n# def square(side):\n#     return side * side\n"
        "# Path: geometry.py\n"
    )
    # The context engine can show exactly that prompt.
    plan = await session.completion.prompt_for(session.snapshot(doc), CURSOR)
    assert plan is not None and plan.request.prompt == backend.requests[0].prompt


async def test_a_slow_or_failing_context_provider_is_left_out(session: Session) -> None:
    session.settings.completion.context_timeout_ms = 20
    backend = ScriptedBackend(BODY)
    engine = use(session, backend)

    async def slow(snap: Snapshot, offset: int) -> Sequence[ContextSnippet]:
        await asyncio.sleep(5)
        return []

    async def broken(snap: Snapshot, offset: int) -> Sequence[ContextSnippet]:
        raise RuntimeError("index is gone")

    for provider in (slow, broken):
        session.completion.context_provider = provider
        suggestion = await engine.suggest(session.snapshot(open_doc(session)), CURSOR)
        assert suggestion is not None
        assert "Context from" not in backend.requests[-1].prompt


async def test_telemetry_records_served_shown_accepted(session: Session) -> None:
    backend = ScriptedBackend(BODY)
    engine = use(session, backend)
    doc = open_doc(session)
    suggestion = await engine.suggest(session.snapshot(doc), CURSOR)
    assert suggestion is not None
    engine.shown(suggestion.id)
    doc = type_chars(session, doc, CURSOR, "ret")
    assert await engine.suggest(session.snapshot(doc), CURSOR + 3) is not None
    engine.partially_accepted(suggestion.id, 6)
    engine.accepted(suggestion.id)
    events = list(read_events(telemetry_path()))
    assert [e["event"] for e in events] == [
        "model",
        "served",
        "shown",
        "served",
        "partial",
        "accepted",
    ]
    model = events[0]
    assert model["promptTokens"] == 10 and model["reusedTokens"] == 8 and model["kind"] == "reused"
    assert model["sameLine"] is False and model["version"] == 1 and len(model["promptSha"]) == 16
    assert "return" not in Path(telemetry_path()).read_text()  # numbers, never code
    summary = summarize(events)
    assert summary.served == 2 and summary.cache_hits == 1 and summary.shown_ids == {suggestion.id}
    assert summary.model_calls == 1 and summary.reused_share == 0.8
    assert summary.acceptance_rate == 1.0 and summary.any_acceptance_rate == 1.0


async def test_telemetry_off_writes_nothing(session: Session) -> None:
    session.settings.telemetry = False
    engine = use(session, ScriptedBackend(BODY))
    assert await engine.suggest(session.snapshot(open_doc(session)), CURSOR) is not None
    assert not telemetry_path().exists()


async def test_a_request_keeps_its_snapshot_when_settings_change_meanwhile(
    session: Session,
) -> None:
    session.settings.completion.debounce_ms = 50
    backend = ScriptedBackend(BODY)
    engine = use(session, backend)
    budgets: list[int] = []

    async def provider(snap: Snapshot, offset: int) -> Sequence[ContextSnippet]:
        budgets.append(snap.settings.context.budget_tokens)
        return []

    engine.context_provider = provider
    snap = session.snapshot(open_doc(session))
    pending = asyncio.ensure_future(engine.suggest(snap, CURSOR))
    await asyncio.sleep(0.01)  # inside the debounce: the user's settings change now
    changed = session.settings.model_copy(deep=True)
    changed.completion.enabled = False
    changed.context.budget_tokens = 7
    session.settings = changed
    suggestion = await pending
    assert suggestion is not None and suggestion.text == "return width * height"
    assert budgets == [snap.settings.context.budget_tokens] != [7]
    assert await engine.suggest(session.snapshot(open_doc(session)), CURSOR) is None
