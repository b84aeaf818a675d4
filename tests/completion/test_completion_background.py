"""Background work of the completion pipeline, with a scripted backend: warm-ups (on
ouzel/cursorRest, on open, on an editing pause) and the speculative next suggestion."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from completion_fakes import ScriptedBackend
from test_completion_pipeline import CURSOR, TEXT, URI, open_doc, type_chars, use

from ouzel.inference.templates import TEMPLATES
from ouzel.server.app import build_engine
from ouzel.server.handlers import completion as handlers
from ouzel.server.server import create_server
from ouzel.server.session import Session

pytestmark = pytest.mark.asyncio

FIRST = "return width * height"


def replies(prompt: str) -> str:
    """The first suggestion in the body; after it is accepted, a print below it."""
    return "\n\nprint(area(4, 5))\n" if FIRST in prompt else FIRST


@pytest.fixture
def session() -> Iterator[Session]:
    server = create_server(build_engine())
    server.session.settings.completion.debounce_ms = 0
    server.session.completion.context_provider = None
    yield server.session
    server.session.engine.close()


def background_backend(**kwargs: object) -> ScriptedBackend:
    return ScriptedBackend(
        replies,
        template=TEMPLATES["qwen"],
        supports_background=True,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_accepting_a_suggestion_is_answered_by_the_speculative_one(
    session: Session,
) -> None:
    backend = background_backend()
    engine = use(session, backend)
    doc = open_doc(session)
    first = await engine.suggest(session.snapshot(doc), CURSOR)
    assert first is not None and first.text == FIRST
    await engine.background_idle()
    speculative = backend.requests[-1]
    assert speculative.background and speculative.max_tokens > 0
    assert FIRST in speculative.prompt  # the prompt of the text after the acceptance

    accepted = type_chars(session, doc, CURSOR, first.text)  # the client inserts it
    calls = len(backend.requests)
    after = await engine.suggest(session.snapshot(accepted), CURSOR + len(first.text))
    assert after is not None and after.kind == "speculative"
    assert after.text == "\nprint(area(4, 5))"  # the line after the accepted one
    assert engine.background_counts["speculative_hit"] == 1
    # Served from the cache; the next speculation (after this one) runs in the background.
    assert all(r.background for r in backend.requests[calls:])


async def test_typing_something_else_invalidates_the_speculation(session: Session) -> None:
    backend = background_backend(char_delay=0.05)
    engine = use(session, backend)
    doc = open_doc(session)
    first = await engine.suggest(session.snapshot(doc), CURSOR)
    assert first is not None
    assert engine.background_kind == "speculative"
    await asyncio.sleep(0.1)  # the speculation is generating
    job_token = backend.tokens[-1]
    assert backend.requests[-1].background
    changed = type_chars(session, doc, CURSOR, "x")  # not the suggestion
    assert job_token.cancelled and engine.background_kind is None
    calls = len(backend.requests)
    suggestion = await engine.suggest(session.snapshot(changed), CURSOR + 1)
    assert suggestion is None or suggestion.kind != "speculative"
    assert len(backend.requests) > calls and not backend.requests[calls].background


async def test_a_real_request_cancels_a_running_warm_up(session: Session) -> None:
    backend = background_backend(prompt_delay=2.0)
    engine = use(session, backend)
    doc = open_doc(session)
    handlers.cursor_rest(
        session,
        {"textDocument": {"uri": URI}, "position": {"line": 1, "character": 4}},
    )
    await asyncio.wait_for(backend.started.wait(), 5)
    warm_request, warm_token = backend.requests[0], backend.tokens[0]
    assert warm_request.background and warm_request.max_tokens == 0
    assert "height):\n    <|fim_suffix|>" in warm_request.prompt  # the place where it rests
    suggestion = await engine.suggest(session.snapshot(doc), CURSOR)
    assert warm_token.cancelled  # stopped the moment the real request needed the model
    assert suggestion is not None and suggestion.text == FIRST
    assert engine.background_counts["preempted"] == 1


async def test_warming_the_place_of_the_last_request_is_skipped(session: Session) -> None:
    backend = background_backend()
    engine = use(session, backend)
    doc = open_doc(session)
    session.settings.completion.speculative = False
    assert await engine.suggest(session.snapshot(doc), CURSOR) is not None
    assert not engine.warm(session.snapshot(doc), CURSOR)  # its prompt is in the cache
    assert engine.warm(session.snapshot(doc), len(TEXT))
    await engine.background_idle()
    assert backend.requests[-1].max_tokens == 0


async def test_no_background_work_for_backends_without_priorities(session: Session) -> None:
    backend = ScriptedBackend(replies, template=TEMPLATES["qwen"])  # e.g. a remote server
    engine = use(session, backend)
    doc = open_doc(session)
    assert await engine.suggest(session.snapshot(doc), CURSOR) is not None
    engine.warm(session.snapshot(doc), 0)
    await engine.background_idle()
    assert len(backend.requests) == 1 and not backend.requests[0].background


async def test_an_editing_pause_warms_the_place_of_the_edit(session: Session) -> None:
    backend = background_backend()
    engine = use(session, backend)
    session.settings.completion.warm_idle_ms = 50
    session.settings.completion.speculative = False
    doc = open_doc(session)
    assert await engine.suggest(session.snapshot(doc), CURSOR) is not None  # a model is in use
    end = TEXT.index("print(area(2, 3))") + len("print(area(2, 3))")
    type_chars(session, doc, end, "  # done")  # an edit no request follows
    await asyncio.sleep(0.3)
    await engine.background_idle()
    warm = backend.requests[-1]
    assert warm.background and warm.max_tokens == 0
    assert "print(area(2, 3))  # done<|fim_suffix|>" in warm.prompt  # the cursor after the edit


async def test_cursor_rest_with_bad_params_is_ignored(session: Session) -> None:
    backend = background_backend()
    use(session, backend)
    open_doc(session)
    for params in (None, {}, {"textDocument": {"uri": URI}}, {"textDocument": {}, "position": 3}):
        handlers.cursor_rest(session, params)
    handlers.cursor_rest(  # not open
        session, {"textDocument": {"uri": "file:///x.py"}, "position": {"line": 0, "character": 0}}
    )
    await asyncio.sleep(0.05)
    assert backend.requests == []


async def test_a_place_missing_from_the_kv_cache_gets_a_smaller_prompt(session: Session) -> None:
    backend = background_backend()
    backend.uncached_tokens = lambda request: backend.count_tokens(request.prompt)  # type: ignore[attr-defined]
    engine = use(session, backend)
    session.settings.completion.speculative = False
    long_text = "".join(f"value_{n} = {n}\n" for n in range(400)) + TEXT
    doc = open_doc(session, long_text)
    cursor = len(long_text) - len(TEXT) + CURSOR
    assert await engine.suggest(session.snapshot(doc), cursor) is not None
    cold = session.settings.completion.cold_prompt_tokens
    assert backend.count_tokens(backend.requests[-1].prompt) <= cold + 8
    session.settings.completion.cold_prompt_tokens = 0  # off: the full prompt
    await engine.suggest(session.snapshot(doc), cursor - 1)
    assert backend.count_tokens(backend.requests[-1].prompt) > 4 * cold


async def test_typing_into_the_suggestion_keeps_the_speculation(session: Session) -> None:
    backend = background_backend(char_delay=0.05)
    engine = use(session, backend)
    doc = open_doc(session)
    first = await engine.suggest(session.snapshot(doc), CURSOR)
    assert first is not None and engine.background_kind == "speculative"
    typed = type_chars(session, doc, CURSOR, first.text[:3])  # type-through
    hit = await engine.suggest(session.snapshot(typed), CURSOR + 3)
    assert hit is not None and hit.kind == "cache"
    assert engine.background_kind == "speculative" and not backend.tokens[-1].cancelled


async def test_a_short_pause_in_small_prompt_typing_does_not_start_a_warm_up(
    session: Session,
) -> None:
    backend = background_backend()
    backend.uncached_tokens = lambda request: backend.count_tokens(request.prompt)  # type: ignore[attr-defined]
    engine = use(session, backend)
    session.settings.completion.speculative = False
    long_text = "".join(f"value_{n} = {n}\n" for n in range(400)) + TEXT
    doc = open_doc(session, long_text)
    cursor = len(long_text) - len(TEXT) + CURSOR
    assert await engine.suggest(session.snapshot(doc), cursor) is not None  # small prompt
    calls = len(backend.requests)
    assert engine.warm(session.snapshot(doc), cursor - 1)  # a pause on the same line
    await asyncio.sleep(0.3)
    assert len(backend.requests) == calls  # still waiting: the next keystroke cancels it
    await engine.suggest(session.snapshot(doc), cursor - 1)  # the keystroke (a cache miss)
    await asyncio.sleep(1.0)
    assert not any(r.max_tokens == 0 for r in backend.requests[calls:])
