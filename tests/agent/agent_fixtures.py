"""Workspaces with things outside them worth stealing, and confirmers that record."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from ouzel.inference.types import CancelToken
from ouzel.server.agent.checkpoint import Checkpoint
from ouzel.server.agent.confirm import CommandProposal, EditDecision, EditProposal
from ouzel.server.agent.sandbox import Sandbox
from ouzel.server.agent.tools import AgentContext
from ouzel.server.settings import DEFAULT_SECRET_GLOBS, AgentSettings

OUTSIDE_CANARY = "CANARY-OUTSIDE-7f3a"
SECRET_CANARY = "CANARY-SECRET-91cc"


@dataclass
class Layout:
    base: Path  # holds everything
    ws: Path  # the workspace
    outside: Path  # a folder next to it
    evil: Path  # `ws-evil`: the sibling whose name starts with the workspace's


def make_layout(base: Path) -> Layout:
    ws, outside, evil = base / "ws", base / "outside", base / "ws-evil"
    for folder in (ws / "src", ws / "sub" / "deep", outside / "inner", evil):
        folder.mkdir(parents=True)
    (outside / "secret.txt").write_text(f"{OUTSIDE_CANARY} outside\n")
    (outside / "inner" / "x.txt").write_text(f"{OUTSIDE_CANARY} inner\n")
    (outside / "caf\u00e9.txt").write_text(f"{OUTSIDE_CANARY} nfc\n")
    (evil / "file.txt").write_text(f"{OUTSIDE_CANARY} sibling\n")
    (ws / "README.md").write_text("# Project\n\nA small project.\n")
    (ws / "src" / "app.py").write_text("def greet(name):\n    return 'hi ' + name\n")
    (ws / "sub" / "deep" / "notes.txt").write_text("notes\n")
    (ws / ".env").write_text(f"TOKEN={SECRET_CANARY}\n")
    (ws / "config").mkdir()
    (ws / "config" / ".env.local").write_text(f"KEY={SECRET_CANARY}\n")
    (ws / "keys").mkdir()
    (ws / "keys" / "id_rsa").write_text(f"{SECRET_CANARY}\n")
    (ws / "sub" / ".ssh").mkdir()
    (ws / "sub" / ".ssh" / "config").write_text(f"{SECRET_CANARY}\n")
    os.symlink(outside / "secret.txt", ws / "link_out.txt")
    os.symlink(outside, ws / "linkdir")
    os.symlink(ws / "chain2", ws / "chain1")
    os.symlink(outside / "secret.txt", ws / "chain2")
    os.symlink(outside / "new-target.txt", ws / "dangling")
    os.symlink(ws / ".env", ws / "env_link")
    os.symlink("../../outside", ws / "sub" / "rel_out")
    os.link(outside / "secret.txt", ws / "hard.txt")
    return Layout(base, ws, outside, evil)


def tree_hashes(*folders: Path) -> dict[str, str]:
    """Every file and symlink under `folders` with a hash of what it is."""
    result = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            for name in filenames + dirnames:
                path = Path(dirpath) / name
                if path.is_symlink():
                    result[str(path)] = "link:" + os.readlink(path)
                elif path.is_file():
                    result[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
                else:
                    result[str(path)] = "dir"
    return result


@dataclass
class RecordingConfirmer:
    """Answers as told and records every question."""

    edits: bool = True
    protected: bool = True
    commands: bool = True
    destructive: bool = True
    asked_edits: list[EditProposal] = field(default_factory=list)
    asked_protected: list[tuple[str, str]] = field(default_factory=list)
    asked_commands: list[CommandProposal] = field(default_factory=list)
    asked_destructive: list[CommandProposal] = field(default_factory=list)
    hook: object = None  # called with the proposal before answering an edit

    async def confirm_edit(self, proposal: EditProposal) -> EditDecision:
        self.asked_edits.append(proposal)
        if callable(self.hook):
            self.hook(proposal)
        return EditDecision.all(proposal, self.edits)

    async def confirm_protected(self, path: str, risk: str) -> bool:
        self.asked_protected.append((path, risk))
        return self.protected

    async def confirm_command(self, proposal: CommandProposal) -> bool:
        self.asked_commands.append(proposal)
        return self.commands

    async def confirm_destructive(self, proposal: CommandProposal) -> bool:
        self.asked_destructive.append(proposal)
        return self.destructive


def make_context(
    ws: Path,
    confirmer: object,
    settings: AgentSettings | None = None,
    index: object = None,
) -> AgentContext:
    sandbox = Sandbox([ws], DEFAULT_SECRET_GLOBS)
    return AgentContext(
        sandbox=sandbox,
        confirmer=confirmer,  # type: ignore[arg-type]
        checkpoint=Checkpoint("turn-1"),
        settings=settings or AgentSettings(),
        cancel=CancelToken(),
        index=index,
    )
