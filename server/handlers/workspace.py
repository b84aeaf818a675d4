"""Workspace folders and configuration changes at run time."""

from __future__ import annotations

import logging
from pathlib import Path

from lsprotocol import types

from ouzel.server.handlers.lifecycle import add_folder, pull_client_configuration, reload_settings
from ouzel.server.session import Session

log = logging.getLogger("ouzel.server.workspace")


def did_change_workspace_folders(
    session: Session, params: types.DidChangeWorkspaceFoldersParams
) -> None:
    added: list[Path] = []
    removed: list[Path] = []
    for folder in params.event.removed:
        path = session.folders.pop(folder.uri, None)
        if path is not None:
            removed.append(path)
    for folder in params.event.added:
        path = add_folder(session, folder.uri)
        if path is not None:
            added.append(path)
    log.info("workspace folders: +%s -%s", [str(p) for p in added], [str(p) for p in removed])
    reload_settings(session)  # the new folders' own .ouzel/config.toml
    for listener in list(session.folders_changed):
        listener(added, removed)


def did_change_configuration(session: Session, params: types.DidChangeConfigurationParams) -> None:
    if session.supports("workspace.configuration"):
        session.spawn(pull_client_configuration(session), "pull-configuration")
        return
    # Clients without the pull model push the settings; take the "ouzel" section.
    pushed = params.settings
    if isinstance(pushed, dict):
        section = pushed.get("ouzel", pushed)
        session.client_config = section if isinstance(section, dict) else {}
    reload_settings(session)
