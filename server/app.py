"""The composition root: what an ouzel process and each of its sessions are made of.

Read this file first. `build_engine` makes every process-wide service once per process
(a TCP server with several editors loads a model once); `build_session` makes one
connection's session and its features, in dependency order, handing each its
dependencies through its constructor. Handlers reach features through the session's typed
attributes (`session.completion`, `session.context`, `session.models`, `session.agent`)
and shared services through `session.engine`; nothing is looked up by name and nothing is built on first use.

    Engine (process)                       Session (connection, or headless for the CLI)
      router      Router (backends)          models      SessionModels(router)
      telemetry   Telemetry (a file)         context     SessionContext(context, index)
      index       IndexService (per root)    completion  CompletionEngine(models, context,
      context     ContextService (Jedi)                                   telemetry)
      jedi        JediCompleter (popup)      agent       AgentService(models.backend_for)
      chat        ChatStores (per root)

Adding a feature (code actions, chat, agent): build its process-wide part in
`build_engine`, its per-session part in `build_session`, add its routes to
`server.routes()`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ouzel.inference.router import Router
from ouzel.server.features.agent import AgentService
from ouzel.server.features.chat.service import ChatStores
from ouzel.server.features.completion import CompletionEngine
from ouzel.server.features.completion_jedi import JediCompleter
from ouzel.server.features.context.service import ContextService, SessionContext
from ouzel.server.features.indexing import IndexService
from ouzel.server.features.models import SessionModels
from ouzel.server.features.telemetry import Telemetry
from ouzel.server.session import Client, HeadlessClient, Session

if TYPE_CHECKING:
    from ouzel.indexer.index import WorkspaceIndex
    from ouzel.server.server import OuzelServer

log = logging.getLogger("ouzel.server.app")


@dataclass
class Engine:
    """Process-wide services shared by every session."""

    router: Router
    telemetry: Telemetry
    index: IndexService
    context: ContextService
    jedi: JediCompleter
    chat: ChatStores
    # Settings layered on top of every session's (from CLI flags such as --model).
    overrides: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        """Release everything, the last-built first (each failure is logged, not raised)."""
        for name, close in (
            ("index", self.index.close),
            ("context", self.context.close),
            ("router", self.router.close),
            ("telemetry", self.telemetry.close),
            ("chat", self.chat.close),
        ):
            try:
                close()
            except Exception:
                log.exception("closing the %s service failed", name)


def build_engine(overrides: dict[str, Any] | None = None, router: Router | None = None) -> Engine:
    """Every process-wide service. Cheap: models, indexes and Jedi start on first use."""
    return Engine(
        router=router or Router(),
        telemetry=Telemetry(),
        index=IndexService(),
        context=ContextService(),
        jedi=JediCompleter(),
        chat=ChatStores(),
        overrides=dict(overrides or {}),
    )


def build_session(
    engine: Engine,
    client: Client | None = None,
    server: OuzelServer | None = None,
    indexes: Callable[[], list[WorkspaceIndex]] | None = None,
) -> Session:
    """One session and its features, wired to its events.

    `client` None makes a headless session (the `ouzel context` command): same features,
    same prompts, no editor. `server` is the connection's pygls server, for the LSP
    handlers. `indexes` replaces the index service (the CLI opens an existing index
    read-only instead of indexing and watching the folders).
    """
    session = Session(client or HeadlessClient(), engine, server)
    headless_indexes = indexes
    index_source = headless_indexes or (lambda: engine.index.indexes_for(session))

    models = SessionModels(session, engine.router)
    context = SessionContext(session, engine.context, index_source)
    completion = CompletionEngine(
        session,
        backend_source=models.backend_for,
        template_for=models.template_for,
        telemetry=engine.telemetry,
        context_provider=context.provide,
    )
    session.models, session.context, session.completion = models, context, completion
    # The agent: its turns (undo) per session, its model from `routing.agent`.
    session.agent = AgentService(session, models.backend_for)

    # Events, in the order listeners run.
    session.documents.on_change(completion.document_changed)
    session.documents.on_change(context.document_changed)
    session.settings_changed.append(context.configure)
    session.folders_changed.append(lambda added, removed: context.configure(session.settings))

    # `ouzel/status`, section by section.
    session.status_sections["model"] = models.status
    session.status_sections["router"] = models.router_status
    session.status_sections["context"] = context.status
    session.status_sections["ghostText"] = completion.status
    if headless_indexes is None:
        session.status_sections["index"] = lambda settings: engine.index.status(session, settings)

    # Once the client has sent its settings: index the folders, probe remote servers.
    if headless_indexes is None:
        session.started.append(lambda: engine.index.attach(session))
        session.ended.append(lambda: engine.index.detach(session))
    session.started.append(models.start_probes)
    session.ended.append(context.close)
    session.ended.append(session.agent.close)
    return session


def start_session(session: Session) -> None:
    """The client finished `initialized` and its settings are in: run the start hooks."""
    _run_hooks(session.started, "start")


def end_session(session: Session) -> None:
    """The connection closed: stop background work, run the end hooks."""
    session.cancel_background()
    _run_hooks(session.ended, "end")


def _run_hooks(hooks: list[Callable[[], None]], what: str) -> None:
    for hook in list(hooks):
        try:
            hook()
        except Exception:  # one failing feature must not keep the others from it
            log.exception("a session %s hook failed", what)
