"""initialize / initialized / shutdown, and settings from every source."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lsprotocol import types

from ouzel.server import __version__, app, logs
from ouzel.server.session import Session
from ouzel.server.settings import Settings, load_for_workspace, merge

log = logging.getLogger("ouzel.server.lifecycle")

# initializationOptions keys that are not settings.
NON_SETTING_OPTIONS = ("authToken", "auth_token")


def on_initialize(session: Session, params: types.InitializeParams) -> None:
    info = params.client_info
    session.client_name = f"{info.name} {info.version or ''}".strip() if info else "unknown client"
    options = params.initialization_options
    if isinstance(options, dict):
        session.init_options = {k: v for k, v in options.items() if k not in NON_SETTING_OPTIONS}
    for folder in params.workspace_folders or []:
        add_folder(session, folder.uri)
    if not session.folders and (params.root_uri or params.root_path):
        root_uri = params.root_uri or Path(params.root_path or "").resolve().as_uri()
        add_folder(session, root_uri)
    reload_settings(session, announce=False)
    log.info(
        "initialize from %s; ouzel %s; position encoding %s; folders %s",
        session.client_name,
        __version__,
        session.encoding,
        [str(p) for p in session.roots] or "none",
    )


def on_initialized(session: Session, params: types.InitializedParams) -> None:
    session.spawn(_after_initialized(session), "initialized")


async def _after_initialized(session: Session) -> None:
    await pull_client_configuration(session)
    app.start_session(session)


def on_shutdown(session: Session, params: Any) -> None:
    # Answer at once: the session's services are released when the connection ends
    # (serve_connection), where a slow release no longer holds up this answer.
    log.info("shutdown requested")
    session.cancel_background()


def add_folder(session: Session, uri: str) -> Path | None:
    path = session.uri_to_path(uri)
    if path is None:
        log.warning("ignoring a workspace folder that is not a file URI: %s", uri)
        return None
    session.folders[uri] = path
    return path


async def pull_client_configuration(session: Session) -> None:
    """Ask the client for the "ouzel" section when it supports workspace/configuration."""
    if not session.supports("workspace.configuration"):
        reload_settings(session)
        return
    try:
        result = await session.lsp_server.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section="ouzel")])
        )
    except Exception as exc:
        log.warning("workspace/configuration failed: %s", exc)
        result = None
    section = result[0] if isinstance(result, (list, tuple)) and result else None
    session.client_config = section if isinstance(section, dict) else {}
    reload_settings(session)


def reload_settings(session: Session, announce: bool = True) -> list[str]:
    """Rebuild settings from all sources, for every workspace folder (each folder's
    `.ouzel/config.toml` applies to its own files); report every invalid value once."""
    client_layer = merge(session.client_config, session.engine.overrides)
    roots = session.roots
    problems: list[str] = []
    per_folder: dict[Path, Settings] = {}
    folders: list[Path | None] = [*roots] or [None]
    for root in folders:
        loaded = load_for_workspace(root, session.init_options, client_layer)
        problems += [p for p in loaded.problems if p not in problems]
        if root is not None:
            per_folder[root] = loaded.settings
    first = per_folder[roots[0]] if roots else loaded.settings
    session.settings = first
    session.folder_settings = per_folder
    logs.set_level(first.log_level)
    for problem in problems:
        log.warning("%s", problem)
    if problems and announce:
        session.show_message("invalid settings ignored:\n" + "\n".join(problems), "warning")
    for listener in list(session.settings_changed):
        try:
            listener(first)
        except Exception:
            log.exception("a settings listener failed")
    return problems
