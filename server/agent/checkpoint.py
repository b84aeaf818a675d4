"""One agent turn's checkpoint: each touched file's bytes (or absence) before the turn, so
the whole turn is undone in one step, new files and folders included."""

from __future__ import annotations

from dataclasses import dataclass, field

from ouzel.server.agent.sandbox import FileState, Resolved, Sandbox, SandboxError


@dataclass
class _Before:
    resolved: Resolved
    state: FileState | None  # None: the file did not exist
    written_sha256: str = ""  # what the agent last wrote


@dataclass
class Checkpoint:
    turn_id: str
    files: dict[str, _Before] = field(default_factory=dict)  # by real path, in touch order
    created_folders: list[tuple[str, str]] = field(default_factory=list)  # (root, relative)

    def remember(
        self,
        sandbox: Sandbox,
        resolved: Resolved,
        before: FileState | None,
        missing: list[str] | None = None,
    ) -> None:
        """Call before the first write of a file in this turn (`missing`: the folders it
        needs, when they were seen earlier)."""
        if resolved.real not in self.files:
            self.files[resolved.real] = _Before(resolved, before)
            for folder in sandbox.missing_folders(resolved) if missing is None else missing:
                self.created_folders.append((resolved.root, folder))

    def wrote(self, resolved: Resolved, sha: str) -> None:
        self.files[resolved.real].written_sha256 = sha

    @property
    def touched(self) -> list[str]:
        return [before.resolved.relative for before in self.files.values()]

    def undo(self, sandbox: Sandbox) -> list[str]:
        """Restore every touched file; returns one problem per file that could not be
        restored (a file the user changed after the agent is left alone)."""
        problems = []
        for before in reversed(list(self.files.values())):
            try:
                self._restore(sandbox, before)
            except (SandboxError, OSError) as exc:
                problems.append(f"{before.resolved.relative}: {exc}")
        for root, folder in reversed(self.created_folders):
            sandbox.remove_empty_folder(root, folder)
        if not problems:
            self.files.clear()
            self.created_folders.clear()
        return problems

    def _restore(self, sandbox: Sandbox, before: _Before) -> None:
        resolved = before.resolved
        if not before.written_sha256:
            return  # remembered but never written (the write was refused)
        if before.state is None:
            sandbox.delete_file(resolved, before.written_sha256)
            return
        sandbox.write_bytes(
            resolved, before.state.data, before.written_sha256, mode=before.state.mode
        )


class TurnHistory:
    """The checkpoints of one conversation's agent turns, newest last."""

    def __init__(self, limit: int = 50) -> None:
        self.limit = limit
        self.turns: list[Checkpoint] = []

    def start(self, turn_id: str) -> Checkpoint:
        checkpoint = Checkpoint(turn_id)
        self.turns.append(checkpoint)
        del self.turns[: -self.limit]
        return checkpoint

    def undo_last(self, sandbox: Sandbox) -> tuple[str | None, list[str]]:
        """Undo the newest turn that wrote something: (its id, problems)."""
        for checkpoint in reversed(self.turns):
            if checkpoint.files:
                problems = checkpoint.undo(sandbox)
                if not problems:
                    self.turns.remove(checkpoint)
                return checkpoint.turn_id, problems
        return None, []
