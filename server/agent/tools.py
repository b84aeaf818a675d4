"""The agent's tools: what each does, its OpenAI JSON schema, and how it is refused.

Every path goes through the sandbox; every write and command through the confirmer. A
tool never raises into the loop: it answers a `ToolOutcome` whose text tells the model
what happened, and a refusal always carries its reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pathspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ouzel.inference.types import CancelToken, ToolCall, ToolSpec
from ouzel.server.agent import commands
from ouzel.server.agent.checkpoint import Checkpoint
from ouzel.server.agent.confirm import CommandProposal, Confirmer, EditDecision, EditProposal
from ouzel.server.agent.matcher import NoMatch, apply_hunks, apply_match, find_match, hunks
from ouzel.server.agent.sandbox import FileState, Resolved, Sandbox, SandboxError, sha256
from ouzel.server.settings import AgentSettings

log = logging.getLogger("ouzel.agent.tools")

MAX_READ_LINES = 400
MAX_LIST = 400
MAX_GLOB = 200
MAX_LINE_CHARS = 300
BINARY_SNIFF = 8192
T = TypeVar("T")


@dataclass
class EditStats:
    """How the model's edits went (the benchmark's figures)."""

    proposals: int = 0
    applied_first_try: int = 0
    applied_after_feedback: int = 0
    refused: int = 0  # match failures, sandbox refusals, stale files
    declined: int = 0  # the user said no
    failed_paths: set[str] = field(default_factory=set)


@dataclass
class AgentContext:
    sandbox: Sandbox
    confirmer: Confirmer
    checkpoint: Checkpoint
    settings: AgentSettings
    cancel: CancelToken
    index: Any = None  # ouzel.indexer.index.WorkspaceIndex, when the workspace has one
    read_hashes: dict[str, str] = field(default_factory=dict)  # real path → sha256 at read
    stats: EditStats = field(default_factory=EditStats)
    # The editor's text of a file open there (real path → text), else None: an open
    # document's buffer is the truth for reads, edits and the stale check.
    buffers: Callable[[str], str | None] | None = None

    def buffer(self, resolved: Resolved) -> str | None:
        return self.buffers(resolved.real) if self.buffers is not None else None


@dataclass(frozen=True)
class ToolOutcome:
    text: str
    ok: bool = True
    refused: str | None = None  # the reason, when the tool refused
    wrote: tuple[str, ...] = ()  # paths written
    ran: tuple[str, ...] = ()  # argv run


def refused(reason: str) -> ToolOutcome:
    return ToolOutcome(f"Refused: {reason}", ok=False, refused=reason)


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadFileArgs(Args):
    path: str = Field(description="File path relative to the workspace folder.")
    start_line: int | None = Field(None, ge=1, description="First line to read (1-based).")
    end_line: int | None = Field(None, ge=1, description="Last line to read (inclusive).")


class ListDirArgs(Args):
    path: str = Field(".", description="Folder relative to the workspace folder.")


class GlobArgs(Args):
    pattern: str = Field(description="gitignore-style pattern, e.g. `*.py` or `src/**/*.ts`.")
    path: str = Field(".", description="Folder to search in.")


class GrepArgs(Args):
    pattern: str = Field(description="Python regular expression.", max_length=1000)
    path: str = Field(".", description="Folder (or file) to search in.")
    glob: str | None = Field(None, description="Only files matching this pattern, e.g. `*.py`.")
    ignore_case: bool = Field(False, description="Case-insensitive match.")
    max_results: int = Field(100, ge=1, le=1000, description="Most matching lines returned.")


class SearchArgs(Args):
    query: str = Field(description="Name or words to look for.", max_length=500)
    limit: int = Field(10, ge=1, le=50, description="Most results.")


class DefinitionsArgs(Args):
    path: str = Field(description="Python file that uses the name.")
    line: int = Field(ge=1, description="Line (1-based) where the name is used.")
    name: str = Field(description="The name on that line.", max_length=200)


class ProposeEditArgs(Args):
    path: str = Field(description="File to change (relative to the workspace folder).")
    old_text: str = Field(
        description="Exact lines to replace, copied from the file (include enough lines to "
        "be unique)."
    )
    new_text: str = Field(description="The replacement lines, written out in full.")
    description: str = Field("", description="One line saying what the change does.")


class CreateFileArgs(Args):
    path: str = Field(description="New file path (relative to the workspace folder).")
    content: str = Field(description="The whole content of the new file.")


class RunCommandArgs(Args):
    argv: list[str] = Field(
        description='Program and arguments, e.g. ["pytest", "-q"]; no shell unless you name one.',
        min_length=1,
        max_length=256,
    )
    cwd: str = Field(".", description="Working folder (inside the workspace).")


Handler = Callable[[AgentContext, Any], Awaitable[ToolOutcome]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[Args]
    handler: Handler

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, openai_schema(self.args))


def openai_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema, simplified for small models (no titles, no null unions)."""
    schema = model.model_json_schema()
    properties: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "default")}
        options = prop.pop("anyOf", None)
        if options:
            real = [o for o in options if o.get("type") != "null"]
            if real:
                prop.update({k: v for k, v in real[0].items() if k != "title"})
        properties[name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": schema.get("required", []),
        "additionalProperties": False,
    }


# --- reading -----------------------------------------------------------------------------


def _text_of(data: bytes, path: str) -> str:
    if b"\0" in data[:BINARY_SNIFF]:
        raise SandboxError(f"`{path}` is a binary file")
    return data.decode("utf-8", errors="replace")


def current_text(
    ctx: AgentContext, resolved: Resolved, state: FileState, path: str
) -> tuple[str, str]:
    """The file's text as the user sees it (the open buffer, else the disk) and its hash."""
    buffer = ctx.buffer(resolved)
    if buffer is not None:
        return buffer, sha256(buffer.encode("utf-8", errors="surrogatepass"))
    return _text_of(state.data, path), state.sha256


async def read_file(ctx: AgentContext, args: ReadFileArgs) -> ToolOutcome:
    resolved = ctx.sandbox.check_read(args.path)
    state = ctx.sandbox.read_state(resolved)
    if state is None:
        return refused(f"`{args.path}` does not exist")
    text, digest = current_text(ctx, resolved, state, args.path)
    ctx.read_hashes[resolved.real] = digest
    lines = text.splitlines()
    start = (args.start_line or 1) - 1
    end = min(len(lines), args.end_line or len(lines), start + MAX_READ_LINES)
    if start >= max(1, len(lines)) and lines:
        return refused(
            f"`{args.path}` has {len(lines)} lines; start_line {start + 1} is past the end"
        )
    body = "\n".join(lines[start:end])
    more = (
        f"\n[{len(lines) - end} more lines: read again with start_line={end + 1}]"
        if end < len(lines)
        else ""
    )
    header = f"{resolved.relative} (lines {start + 1}-{end} of {len(lines)})"
    return ToolOutcome(f"{header}\n{body}{more}")


async def list_dir(ctx: AgentContext, args: ListDirArgs) -> ToolOutcome:
    resolved = ctx.sandbox.check_read(args.path, want_dir=True)
    entries = ctx.sandbox.list_folder(resolved)
    shown = []
    hidden = 0
    for name, kind in entries:
        if kind == "dir":
            shown.append(name + "/")
        elif kind == "file":
            shown.append(name)
        elif kind == "secret":
            shown.append(f"{name} (secret: never read)")
        elif kind == "symlink":
            shown.append(f"{name} (symlink: not followed)")
        else:
            hidden += 1
    text = "\n".join(shown[:MAX_LIST]) or "(empty)"
    if len(shown) > MAX_LIST:
        text += f"\n[{len(shown) - MAX_LIST} more entries]"
    if hidden:
        text += f"\n[{hidden} ignored entries not shown]"
    return ToolOutcome(f"{resolved.relative or '.'}/\n{text}")


def _walk(ctx: AgentContext, resolved: Resolved) -> list[str]:
    return [path for path, _ in ctx.sandbox.walk_files(resolved)]


def _spec(pattern: str) -> pathspec.GitIgnoreSpec:
    if not pattern.strip() or "\0" in pattern:
        raise SandboxError("the pattern is empty")
    return pathspec.GitIgnoreSpec.from_lines([pattern])


async def glob(ctx: AgentContext, args: GlobArgs) -> ToolOutcome:
    resolved = ctx.sandbox.check_read(args.path, want_dir=True)
    spec = _spec(args.pattern)
    under = resolved.relative
    paths = await asyncio.to_thread(_walk, ctx, resolved)
    found = [
        p
        for p in paths
        if spec.match_file(p[len(under) + 1 :] if under else p) or spec.match_file(p)
    ]
    text = "\n".join(found[:MAX_GLOB]) or "(no files match)"
    if len(found) > MAX_GLOB:
        text += f"\n[{len(found) - MAX_GLOB} more files]"
    return ToolOutcome(text)


def grep_files(
    sandbox: Sandbox,
    resolved: Resolved,
    regex: re.Pattern[str],
    only: pathspec.GitIgnoreSpec | None,
    max_results: int,
    cancel: CancelToken,
) -> tuple[list[str], int]:
    """Matching lines as `path:line: text`, and how many files were searched."""
    hits: list[str] = []
    searched = 0
    prefilter = _bytes_regex(regex)
    for path, fd in sandbox.walk_files(resolved):
        if cancel.cancelled or len(hits) >= max_results:
            break
        if only is not None and not only.match_file(path):
            continue
        data = _read_capped(fd, sandbox.max_file_bytes)
        if data is None or b"\0" in data[:BINARY_SNIFF]:
            continue
        searched += 1
        if prefilter is not None and prefilter.search(data) is None:
            continue  # most files do not match: skip decoding them
        text = data.decode("utf-8", errors="replace")
        line, counted_to = 1, 0
        last_line = -1
        for match in regex.finditer(text):
            start = match.start()
            line += text.count("\n", counted_to, start)
            counted_to = start
            if line == last_line:
                continue
            last_line = line
            begin = text.rfind("\n", 0, start) + 1
            end = text.find("\n", start)
            content = text[begin : end if end >= 0 else len(text)]
            hits.append(f"{path}:{line}: {content[:MAX_LINE_CHARS]}")
            if len(hits) >= max_results:
                break
    return hits, searched


def _bytes_regex(regex: re.Pattern[str]) -> re.Pattern[bytes] | None:
    """The same pattern over bytes, when it surely matches the same lines there: ASCII,
    case-sensitive, no `.`, classes or `\\w`-style escapes (those differ on UTF-8 bytes)."""
    pattern = regex.pattern
    if not pattern.isascii() or regex.flags & re.IGNORECASE or "." in pattern or "[" in pattern:
        return None
    if re.search(r"\\[A-Za-z0-9]", pattern):
        return None
    try:
        return re.compile(regex.pattern.encode("ascii"), re.MULTILINE)
    except re.error:
        return None


def _read_capped(fd: int, cap: int) -> bytes | None:
    size = os.fstat(fd).st_size
    if size > cap:
        return None
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


async def grep(ctx: AgentContext, args: GrepArgs) -> ToolOutcome:
    resolved = ctx.sandbox.resolve(args.path)
    if resolved.exists and not resolved.is_dir:
        # One file: the same rules as read_file.
        resolved = ctx.sandbox.check_read(args.path)
        folder_raw = os.path.dirname(resolved.real)
        folder = ctx.sandbox.check_read(folder_raw, want_dir=True)
        only: pathspec.GitIgnoreSpec | None = pathspec.GitIgnoreSpec.from_lines(
            ["/" + resolved.relative]
        )
    else:
        folder = ctx.sandbox.check_read(args.path, want_dir=True)
        only = _spec(args.glob) if args.glob else None
    try:
        regex = re.compile(args.pattern, re.MULTILINE | (re.IGNORECASE if args.ignore_case else 0))
    except re.error as exc:
        return refused(f"the pattern is not a valid regular expression ({exc})")
    hits, searched = await asyncio.to_thread(
        grep_files, ctx.sandbox, folder, regex, only, args.max_results, ctx.cancel
    )
    text = "\n".join(hits) or f"(no matches in {searched} files)"
    if len(hits) >= args.max_results:
        text += f"\n[stopped at {args.max_results} matches]"
    return ToolOutcome(text)


# --- the index and Jedi ------------------------------------------------------------------


def _readable(ctx: AgentContext, relative: str, root: str) -> bool:
    try:
        ctx.sandbox.check_read(os.path.join(root, relative))
    except SandboxError:
        return False
    return True


async def search_symbols(ctx: AgentContext, args: SearchArgs) -> ToolOutcome:
    if ctx.index is None:
        return refused("the workspace index is not available")
    from ouzel.indexer.search import search_symbols as find

    hits = await asyncio.to_thread(find, ctx.index, args.query, args.limit)
    root = str(ctx.index.root)
    lines = [
        f"{hit.kind} {hit.qualified_name or hit.name} {hit.path}:{hit.start_line + 1} "
        f"{hit.signature[:MAX_LINE_CHARS]}".rstrip()
        for hit in hits
        if _readable(ctx, hit.path, root)
    ]
    return ToolOutcome("\n".join(lines) or "(no symbols match)")


async def search_code(ctx: AgentContext, args: SearchArgs) -> ToolOutcome:
    if ctx.index is None:
        return refused("the workspace index is not available")
    from ouzel.indexer.search import search_chunks

    hits = await asyncio.to_thread(search_chunks, ctx.index, args.query, args.limit)
    root = str(ctx.index.root)
    parts = []
    for hit in hits:
        if not _readable(ctx, hit.path, root):
            continue
        body = "\n".join(hit.text.splitlines()[:30])
        parts.append(f"{hit.path}:{hit.start_line + 1}-{hit.end_line + 1}\n{body}")
    return ToolOutcome("\n\n".join(parts) or "(no code matches)")


def _jedi_definitions(real: str, root: str, text: str, line: int, column: int) -> list[Any]:
    import jedi
    from jedi.api.environment import InterpreterEnvironment

    # Parsed, never imported or run; the workspace's own interpreter is not started.
    project = jedi.Project(root, smart_sys_path=True, load_unsafe_extensions=False)
    script = jedi.Script(text, path=real, project=project, environment=InterpreterEnvironment())
    return list(script.goto(line, column, follow_imports=True))


async def definitions(ctx: AgentContext, args: DefinitionsArgs) -> ToolOutcome:
    resolved, data = ctx.sandbox.read_bytes(args.path)
    text = _text_of(data, args.path)
    lines = text.splitlines()
    if args.line > len(lines):
        return refused(f"`{args.path}` has {len(lines)} lines, not {args.line}")
    found = re.search(rf"(?<!\w){re.escape(args.name)}(?!\w)", lines[args.line - 1])
    if not found:
        return refused(f"`{args.name}` is not on line {args.line} of `{args.path}`")
    names = await asyncio.to_thread(
        _jedi_definitions, resolved.real, resolved.root, text, args.line, found.start()
    )
    out = []
    for name in names[:10]:
        module = str(name.module_path) if name.module_path else ""
        where = _inside(ctx, module)
        if where is None:
            out.append(f"{name.type} {name.full_name or name.name} (outside the workspace)")
            continue
        relative, source = where
        line = name.line or 1
        source_line = source[line - 1] if 0 < line <= len(source) else ""
        out.append(
            f"{name.type} {name.full_name or name.name} {relative}:{line}: {source_line.strip()}"
        )
    return ToolOutcome("\n".join(out) or f"(no definition found for `{args.name}`)")


def _inside(ctx: AgentContext, module: str) -> tuple[str, list[str]] | None:
    if not module:
        return None
    try:
        resolved, data = ctx.sandbox.read_bytes(module)
    except SandboxError:
        return None
    return resolved.relative, data.decode("utf-8", errors="replace").splitlines()


# --- writing -----------------------------------------------------------------------------


async def until_cancelled(ctx: AgentContext, waiting: Awaitable[T]) -> T:
    """Await a confirmation, giving up (CancelledError) when the turn is cancelled."""
    loop = asyncio.get_running_loop()
    cancelled: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not cancelled.done():
            cancelled.set_result(None)

    unsubscribe = ctx.cancel.on_cancel(lambda: loop.call_soon_threadsafe(wake))
    task = asyncio.ensure_future(waiting)
    pending: set[asyncio.Future[Any]] = {task, cancelled}
    try:
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            raise asyncio.CancelledError("the agent turn was cancelled")
        return task.result()
    finally:
        unsubscribe()


def _split_newlines(text: str) -> tuple[str, bool]:
    """The text with `\\n` line endings, and whether the file used `\\r\\n` throughout."""
    crlf = "\r\n" in text and text.count("\n") == text.count("\r\n")
    return (text.replace("\r\n", "\n") if crlf else text), crlf


async def propose_edit(ctx: AgentContext, args: ProposeEditArgs) -> ToolOutcome:
    ctx.stats.proposals += 1
    outcome = await _propose_edit(ctx, args)
    if outcome.wrote:
        if args.path in ctx.stats.failed_paths:
            ctx.stats.applied_after_feedback += 1
        else:
            ctx.stats.applied_first_try += 1
    elif outcome.refused and "declined" in outcome.refused:
        ctx.stats.declined += 1
    else:
        ctx.stats.refused += 1
        ctx.stats.failed_paths.add(args.path)
    return outcome


async def _propose_edit(ctx: AgentContext, args: ProposeEditArgs) -> ToolOutcome:
    resolved = ctx.sandbox.check_write(args.path)
    if not resolved.exists:
        return refused(f"`{args.path}` does not exist; use create_file for a new file")
    state = ctx.sandbox.read_state(resolved)
    if state is None:
        return refused(f"`{args.path}` does not exist")
    original, digest = current_text(ctx, resolved, state, args.path)
    known = ctx.read_hashes.get(resolved.real)
    if known is not None and known != digest:
        return refused(
            f"`{args.path}` changed since you read it (someone else edited it); read it again "
            "before editing"
        )
    work, crlf = _split_newlines(original)
    old = args.old_text.replace("\r\n", "\n") if crlf else args.old_text
    new = args.new_text.replace("\r\n", "\n") if crlf else args.new_text
    match = find_match(work, old, new)
    if isinstance(match, NoMatch):
        return refused(match.reason)
    changed = apply_match(work, match)
    if crlf:
        changed = changed.replace("\n", "\r\n")
    return await _confirm_and_write(ctx, resolved, state, original, changed, args.description)


async def create_file(ctx: AgentContext, args: CreateFileArgs) -> ToolOutcome:
    resolved = ctx.sandbox.check_write(args.path)
    if resolved.exists:
        return refused(f"`{args.path}` already exists; use propose_edit to change it")
    return await _confirm_and_write(ctx, resolved, None, "", args.content, "")


async def _confirm_and_write(
    ctx: AgentContext,
    resolved: Resolved,
    state: FileState | None,
    old: str,
    new: str,
    description: str,
) -> ToolOutcome:
    changes = hunks(old, new)
    if not changes:
        return refused("the edit changes nothing")
    proposal = EditProposal(
        path=resolved.relative,
        root=resolved.root,
        old_text=old,
        new_text=new,
        hunks=tuple(changes),
        created=state is None,
        description=description[:500],
        protected=resolved.protected,
    )
    if proposal.protected:
        allowed = await until_cancelled(
            ctx, ctx.confirmer.confirm_protected(proposal.path, proposal.protected)
        )
        if allowed is not True:
            return refused(
                f"the user declined writing the protected file `{proposal.path}` "
                f"({proposal.protected})"
            )
    # Folders a new file needs, seen before the editor (which may create them) is asked.
    missing = ctx.sandbox.missing_folders(resolved)
    decision = await until_cancelled(ctx, ctx.confirmer.confirm_edit(proposal))
    accepted = _accepted(decision, len(changes))
    if not any(accepted):
        return refused(f"the user declined the edit to `{proposal.path}`")
    final = new if all(accepted) else apply_hunks(old, changes, accepted)
    data = final.encode("utf-8", errors="surrogatepass")
    ctx.checkpoint.remember(ctx.sandbox, resolved, state, missing)
    _write(ctx, resolved, state, data)
    written = sha256(data)
    ctx.checkpoint.wrote(resolved, written)
    ctx.read_hashes[resolved.real] = written
    verb = "created" if state is None else "changed"
    note = ""
    if not all(accepted):
        rejected = [str(i + 1) for i, take in enumerate(accepted) if not take]
        note = f"; the user rejected hunk(s) {', '.join(rejected)} of {len(changes)}"
    return ToolOutcome(f"{verb} {proposal.path}{note}", wrote=(proposal.path,))


def _write(ctx: AgentContext, resolved: Resolved, state: FileState | None, data: bytes) -> None:
    """The one write to disk. An editor that already saved exactly this text (VS Code's
    `files.refactoring.autoSave`) is not written again; one that created the new file empty
    (a `CreateFile` it ran) is filled."""
    current = ctx.sandbox.read_state(resolved)
    if current is not None and current.data == data:
        return
    expect = state.sha256 if state is not None else None
    if state is None and current is not None and current.data == b"":
        expect = current.sha256
    ctx.sandbox.write_bytes(resolved, data, expect)


def _accepted(decision: object, count: int) -> list[bool]:
    """The per-hunk answers; anything malformed counts as "no" for every hunk."""
    if not isinstance(decision, EditDecision) or len(decision.accepted) != count:
        return [False] * count
    return [value is True for value in decision.accepted]


# --- commands ----------------------------------------------------------------------------


async def run_command(ctx: AgentContext, args: RunCommandArgs) -> ToolOutcome:
    if not ctx.settings.run_command:
        return refused(
            "running commands is off; only the user can enable `agent.run_command` in their "
            "own config"
        )
    if any("\0" in word or len(word) > 20000 for word in args.argv):
        return refused("an argument contains NUL or is too long")
    folder = ctx.sandbox.check_read(args.cwd, want_dir=True)
    bwrap = commands.bwrap_path()
    if bwrap is None and ctx.settings.require_sandbox:
        return refused("bubblewrap (`bwrap`) is not installed and `agent.require_sandbox` is on")
    risk = (
        "runs under bubblewrap: no network, writes only inside the workspace (its protected "
        "folders stay read-only)"
        if bwrap
        else "runs WITHOUT a sandbox (bubblewrap is not installed): it can use the network and "
        "write anywhere your user can"
    )
    proposal = CommandProposal(
        argv=tuple(args.argv),
        cwd=folder.real,
        sandboxed=bwrap is not None,
        risk=risk,
        destructive=tuple(commands.destructive_reasons(args.argv)),
    )
    if await until_cancelled(ctx, ctx.confirmer.confirm_command(proposal)) is not True:
        return refused(f"the user declined running {json.dumps(args.argv)}")
    if proposal.destructive and (
        await until_cancelled(ctx, ctx.confirmer.confirm_destructive(proposal)) is not True
    ):
        return refused(
            f"the user declined the destructive command ({'; '.join(proposal.destructive)})"
        )
    result = await commands.run(
        proposal.argv,
        proposal.cwd,
        ctx.sandbox.roots,
        ctx.cancel,
        ctx.settings.command_timeout_s,
        ctx.settings.command_output_bytes,
    )
    status = (
        "timed out and was killed"
        if result.timed_out
        else "was stopped"
        if result.exit_code is None
        else f"exited with {result.exit_code}"
    )
    where = "in the bubblewrap sandbox" if result.sandboxed else "without a sandbox"
    cut = "\n[output truncated]" if result.truncated else ""
    return ToolOutcome(
        f"the command {status} ({where}). Output:\n{result.output}{cut}",
        ok=result.exit_code == 0,
        ran=(json.dumps(args.argv),),
    )


# --- the registry --------------------------------------------------------------------------

TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "read_file",
            "Read a text file of the workspace (optionally a line range).",
            ReadFileArgs,
            read_file,
        ),
        Tool("list_dir", "List a folder of the workspace.", ListDirArgs, list_dir),
        Tool("glob", "Find files by name pattern.", GlobArgs, glob),
        Tool(
            "grep",
            "Search file contents with a regular expression; answers path:line: text.",
            GrepArgs,
            grep,
        ),
        Tool(
            "search_symbols",
            "Find functions, classes and other definitions by name.",
            SearchArgs,
            search_symbols,
        ),
        Tool(
            "search_code",
            "Full-text search of the code index; answers code excerpts.",
            SearchArgs,
            search_code,
        ),
        Tool(
            "definitions",
            "Where a Python name used on a line is defined (Jedi).",
            DefinitionsArgs,
            definitions,
        ),
        Tool(
            "propose_edit",
            "Replace old_text (copied exactly from the file) with new_text. "
            "The user reviews each change before it is written.",
            ProposeEditArgs,
            propose_edit,
        ),
        Tool(
            "create_file",
            "Create a new file (the user reviews it first).",
            CreateFileArgs,
            create_file,
        ),
        Tool(
            "run_command",
            "Run a program in the workspace (the user confirms each call).",
            RunCommandArgs,
            run_command,
        ),
    )
}


def tool_specs(settings: AgentSettings, index_available: bool) -> list[ToolSpec]:
    """The tools offered to the model: no commands unless the user enabled them, no index
    tools without an index."""
    specs = []
    for tool in TOOLS.values():
        if tool.name == "run_command" and not settings.run_command:
            continue
        if tool.name in ("search_symbols", "search_code") and not index_available:
            continue
        specs.append(tool.spec())
    return specs


async def execute(ctx: AgentContext, call: ToolCall) -> ToolOutcome:
    """Run one tool call; every failure becomes an outcome the model can read."""
    tool = TOOLS.get(call.name)
    if tool is None:
        return refused(f"there is no tool named `{call.name}`; use one of {', '.join(TOOLS)}")
    try:
        raw = json.loads(call.arguments or "{}")
    except (json.JSONDecodeError, RecursionError) as exc:
        return refused(f"the arguments are not valid JSON ({exc})")
    if not isinstance(raw, dict):
        return refused("the arguments must be a JSON object")
    try:
        args = tool.args.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}"
            for error in exc.errors()[:5]
        )
        return refused(f"invalid arguments for {call.name}: {problems}")
    try:
        return await tool.handler(ctx, args)
    except SandboxError as exc:
        return refused(str(exc))
    except OSError as exc:
        return refused(f"{call.name} failed: {exc.strerror or exc}")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a tool bug must not end the turn
        log.exception("tool %s failed", call.name)
        return refused(f"{call.name} failed: {type(exc).__name__}: {exc}")
