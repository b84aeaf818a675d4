"""What the agent asks the user, and the `Confirmer` protocol the editor layer implements.

Every write and every command is a proposal: nothing happens until the confirmer says
yes. Proposals carry what the user must see (the hunks, the exact argv and cwd, the risk);
the model's own words are never where a risk comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ouzel.server.agent.matcher import Hunk


@dataclass(frozen=True)
class EditProposal:
    """A change to one file: its hunks, each accepted or rejected on its own."""

    path: str  # workspace-relative, posix
    root: str
    old_text: str  # the whole file before ("" for a new file)
    new_text: str  # the whole file after
    hunks: tuple[Hunk, ...]
    created: bool  # a new file
    description: str = ""  # the model's own summary (untrusted text, shown as such)
    protected: str | None = None  # the risk, when the file is protected


@dataclass(frozen=True)
class EditDecision:
    accepted: tuple[bool, ...]  # one per hunk

    @classmethod
    def all(cls, proposal: EditProposal, value: bool) -> EditDecision:
        return cls(tuple(value for _ in proposal.hunks))


@dataclass(frozen=True)
class CommandProposal:
    argv: tuple[str, ...]
    cwd: str  # absolute, inside the workspace
    sandboxed: bool  # under bubblewrap: no network, writes only in the workspace
    risk: str  # what the command may do, in the user's words
    destructive: tuple[str, ...] = field(default=())  # why it is destructive, if it is


class Confirmer(Protocol):
    """The user's answers. The LSP layer implements it with `workspace/applyEdit` (one
    change annotation with needsConfirmation per hunk) and `window/showMessageRequest`."""

    async def confirm_edit(self, proposal: EditProposal) -> EditDecision:
        """Which hunks of the proposal to write."""
        ...

    async def confirm_protected(self, path: str, risk: str) -> bool:
        """Whether to write a protected file at all (asked before the hunks)."""
        ...

    async def confirm_command(self, proposal: CommandProposal) -> bool:
        """Whether to run exactly this argv in this cwd."""
        ...

    async def confirm_destructive(self, proposal: CommandProposal) -> bool:
        """The second question for a destructive command."""
        ...


class DenyAll:
    """A confirmer that refuses everything (the default when nobody can be asked)."""

    async def confirm_edit(self, proposal: EditProposal) -> EditDecision:
        return EditDecision.all(proposal, False)

    async def confirm_protected(self, path: str, risk: str) -> bool:
        return False

    async def confirm_command(self, proposal: CommandProposal) -> bool:
        return False

    async def confirm_destructive(self, proposal: CommandProposal) -> bool:
        return False
