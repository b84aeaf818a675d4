"""`run_command` for the agent: destructive-command detection, bubblewrap, limits.

The model never decides what is safe. Every call is confirmed with its exact argv and
cwd; a destructive one (recursive delete, `git reset --hard`, force push, inline code of
an interpreter, a command line that cannot be parsed, …) gets a second confirmation.
Shell strings (`sh -c '…'`) are split into their simple commands at every operator,
however many there are, and each is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ouzel.inference.types import CancelToken

SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "fish", "busybox"}
INTERPRETERS = {"python", "python3", "perl", "ruby", "node", "php", "lua", "deno", "bun"}
WRAPPERS = {
    "sudo",
    "doas",
    "env",
    "nice",
    "nohup",
    "time",
    "command",
    "exec",
    "builtin",
    "stdbuf",
    "ionice",
    "chronic",
    "xargs",
    "watch",
    "strace",
    "setsid",
    "eval",
}
OPERATORS = {
    ";",
    "&&",
    "||",
    "|",
    "&",
    "(",
    ")",
    ";;",
    "|&",
    "\n",
    "{",
    "}",
    "!",
    "then",
    "do",
    "else",
    "elif",
    "if",
    "while",
    "until",
    "fi",
    "done",
}
MAX_DEPTH = 6
KEEP_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
PROTECTED_IN_SANDBOX = (
    ".git",
    ".vscode",
    ".ouzel",
    ".github",
    ".idea",
    ".claude",
    ".devcontainer",
    ".nvim.lua",
    ".nvimrc",
    ".exrc",
    ".envrc",
)


def destructive_reasons(argv: Sequence[str]) -> list[str]:
    """Why running `argv` could destroy data or history (empty: not found destructive)."""
    reasons: list[str] = []
    _check(list(argv), reasons, 0)
    return list(dict.fromkeys(reasons))


def _name(word: str) -> str:
    return os.path.basename(word).lower()


def _check(words: list[str], reasons: list[str], depth: int) -> None:
    words = _unwrap(words)
    if not words:
        return
    if depth > MAX_DEPTH:
        reasons.append("shell commands nested too deeply to check")
        return
    name = _name(words[0])
    if name.startswith("python") or name in INTERPRETERS:
        if any(flag in words[1:] for flag in ("-c", "-e", "--eval", "-E", "-r")):
            reasons.append(f"`{name}` runs inline code that cannot be checked")
        return
    if name in SHELLS:
        script = _shell_script(words)
        if script is None:
            if len(words) > 1:
                reasons.append(f"`{name}` runs a script file that cannot be checked")
            return
        for command in split_shell(script, reasons):
            _check(command, reasons, depth + 1)
        return
    _check_simple(name, words, reasons)


def _unwrap(words: list[str]) -> list[str]:
    """Drop `VAR=value` prefixes and wrappers (`sudo`, `env`, `xargs`, `timeout 5`, …)."""
    changed = True
    while words and changed:
        changed = False
        while (
            words
            and "=" in words[0]
            and not words[0].startswith(("=", "-"))
            and words[0].split("=", 1)[0].replace("_", "").isalnum()
        ):
            words, changed = words[1:], True
        if words and _name(words[0]) in WRAPPERS:
            words, changed = words[1:], True
            while words and words[0].startswith("-"):
                words = words[1:]
        if words and _name(words[0]) == "timeout":
            words, changed = words[1:], True
            while words and (words[0].startswith("-") or words[0][:1].isdigit()):
                words = words[1:]
    return words


def _shell_script(words: list[str]) -> str | None:
    for i, word in enumerate(words[1:], start=1):
        if word == "-c" or (word.startswith("-") and not word.startswith("--") and "c" in word):
            return " ".join(words[i + 1 : i + 2]) if i + 1 < len(words) else ""
    return None


def split_shell(script: str, reasons: list[str]) -> list[list[str]]:
    """The simple commands of a shell string, split at every operator and substitution."""
    text = script.replace("`", " ; ").replace("$(", " ; ( ").replace("<(", " ( ")
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
        lexer.whitespace_split = True
        lexer.commenters = ""
        tokens = list(lexer)
    except ValueError as exc:
        reasons.append(f"the shell string cannot be parsed ({exc})")
        return []
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token in OPERATORS or set(token) <= set(";&|()<>"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def _flags(words: Iterable[str]) -> tuple[set[str], set[str]]:
    """(short flag letters, long flags) of a command's words."""
    short: set[str] = set()
    long: set[str] = set()
    for word in words:
        if word.startswith("--"):
            long.add(word.split("=", 1)[0])
        elif word.startswith("-") and len(word) > 1:
            short.update(word[1:])
    return short, long


def _check_simple(name: str, words: list[str], reasons: list[str]) -> None:
    args = words[1:]
    short, long = _flags(args)
    if name == "rm" and (short & {"r", "R"} or "--recursive" in long):
        reasons.append("recursive delete (`rm -r`)")
    elif name == "rm" and any(arg in ("/", "*", ".", "..", "~") for arg in args):
        reasons.append("`rm` of a whole folder's contents")
    elif name in ("shred", "wipefs") or name.startswith("mkfs"):
        reasons.append(f"`{name}` destroys data")
    elif name == "dd" and any(arg.startswith("of=") for arg in args):
        reasons.append("`dd of=` overwrites a file or device")
    elif name == "find" and ("-delete" in args or any(a in ("-exec", "-execdir") for a in args)):
        reasons.append("`find -delete` / `-exec` changes many files")
    elif name in ("chmod", "chown", "chgrp") and (short & {"R"} or "--recursive" in long):
        reasons.append(f"recursive `{name}`")
    elif name == "truncate":
        reasons.append("`truncate` cuts files")
    elif name == "git":
        _check_git(args, reasons)


def _check_git(args: list[str], reasons: list[str]) -> None:
    # Skip global options (`-C dir`, `-c k=v`) to the subcommand.
    rest = list(args)
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option in ("-C", "-c", "--git-dir", "--work-tree") and rest:
            rest.pop(0)
    if not rest:
        return
    sub, tail = rest[0], rest[1:]
    short, long = _flags(tail)
    if sub == "reset" and "--hard" in long:
        reasons.append("`git reset --hard` discards uncommitted work")
    elif sub == "push" and (
        "f" in short
        or long & {"--force", "--force-with-lease", "--force-if-includes", "--mirror", "--delete"}
        or any(arg.startswith("+") or arg.startswith(":") for arg in tail)
    ):
        reasons.append("force push / remote delete rewrites the remote's history")
    elif sub == "clean" and ("f" in short or "--force" in long):
        reasons.append("`git clean -f` deletes untracked files")
    elif sub in ("checkout", "switch") and (
        "f" in short
        or "--force" in long
        or "--" in tail
        or "." in tail
        or "--discard-changes" in long
    ):
        reasons.append(f"`git {sub}` discards local changes")
    elif sub == "restore":
        reasons.append("`git restore` discards local changes")
    elif sub == "branch" and ("D" in short or ("d" in short and "--force" in long)):
        reasons.append("`git branch -D` deletes a branch")
    elif sub == "stash" and tail[:1] and tail[0] in ("drop", "clear"):
        reasons.append("`git stash drop/clear` deletes stashed work")
    elif sub in ("filter-branch", "filter-repo", "gc", "prune", "reflog", "update-ref"):
        reasons.append(f"`git {sub}` can delete history")
    elif sub == "rebase" or (sub == "commit" and "--amend" in long):
        reasons.append(f"`git {sub}` rewrites history")


# --- running ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None  # None: killed (timeout or cancel)
    output: str
    truncated: bool
    timed_out: bool
    sandboxed: bool


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def scrubbed_env(home: str) -> dict[str, str]:
    env = {key: os.environ[key] for key in KEEP_ENV if key in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(
        {
            "HOME": home,
            "TERM": "dumb",
            "NO_COLOR": "1",
            "PAGER": "cat",
            "GIT_PAGER": "cat",
            "GIT_TERMINAL_PROMPT": "0",
        }
    )
    return env


def sandbox_argv(argv: Sequence[str], cwd: str, roots: Sequence[str], bwrap: str) -> list[str]:
    """bubblewrap around `argv`: read-only system, no network, writable workspace roots
    (their protected folders and files stay read-only), a private /tmp."""
    command = [
        bwrap,
        "--die-with-parent",
        "--new-session",
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]
    for root in roots:
        command += ["--bind", root, root]
        for name in PROTECTED_IN_SANDBOX:
            path = os.path.join(root, name)
            if os.path.lexists(path) and not os.path.islink(path):
                command += ["--ro-bind", path, path]
    command += ["--chdir", cwd, "--", *argv]
    return command


async def run(
    argv: Sequence[str],
    cwd: str,
    roots: Sequence[str],
    cancel: CancelToken,
    timeout_s: float,
    output_cap: int,
    use_bwrap: bool = True,
) -> CommandResult:
    bwrap = bwrap_path() if use_bwrap else None
    full = sandbox_argv(argv, cwd, roots, bwrap) if bwrap else list(argv)
    env = scrubbed_env("/tmp" if bwrap else cwd)
    try:
        process = await asyncio.create_subprocess_exec(
            *full,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return CommandResult(
            None, f"cannot start `{argv[0]}`: {exc.strerror}", False, False, bool(bwrap)
        )
    assert process.stdout is not None
    kept = bytearray()
    seen = 0

    async def pump() -> None:
        nonlocal seen
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            seen += len(chunk)
            if len(kept) < output_cap:
                kept.extend(chunk[: output_cap - len(kept)])

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    loop = asyncio.get_running_loop()
    unsubscribe = cancel.on_cancel(lambda: loop.call_soon_threadsafe(kill))
    timed_out = False
    try:
        try:
            await asyncio.wait_for(pump(), timeout_s)
        except asyncio.TimeoutError:
            timed_out = True
            kill()
        code = await process.wait()
    finally:
        unsubscribe()
        if process.returncode is None:
            kill()
            await process.wait()
    killed = timed_out or cancel.cancelled
    return CommandResult(
        exit_code=None if killed else code,
        output=kept.decode("utf-8", errors="replace"),
        truncated=seen > len(kept),
        timed_out=timed_out,
        sandboxed=bool(bwrap),
    )
