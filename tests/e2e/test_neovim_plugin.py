"""The Neovim plugin without a model: startup, options, keys, commands and health.

A real headless Neovim 0.11 with only `vim.lsp.enable('ouzel')` in its config, against a real
`ouzel serve` (which loads no model until a suggestion is asked for).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynvim.api.common import NvimError

sys.path.insert(0, str(Path(__file__).parent / "nvim"))
from harness import PLUGIN, Editor, editor, wait_for

pytestmark = pytest.mark.e2e

SOURCE = "def add(a, b):\n    return a + b\n"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / ".git").mkdir()  # a root marker
    (root / "calc.py").write_text(SOURCE)
    return root


@pytest.fixture
def nvim(workspace: Path, tmp_path: Path) -> Iterator[Editor]:
    with editor(workspace, tmp_path / "home") as running:
        yield running


def checkhealth(nvim: Editor) -> str:
    nvim.command("checkhealth ouzel")
    return "\n".join(nvim.lines())


def test_startup_loads_no_module_and_maps_no_key(nvim: Editor) -> None:
    loaded = nvim.lua(
        "return vim.tbl_filter(function(m) return m:match('^ouzel') end, vim.tbl_keys(package.loaded))"
    )
    assert loaded == []
    assert nvim.nvim.funcs.exists(":Ouzel") == 2
    for plug in ["accept", "accept-word", "accept-line", "dismiss", "next"]:
        assert nvim.nvim.funcs.maparg(f"<Plug>(ouzel-{plug})", "i") != ""
    # Default keys are set when ouzel first attaches, not at startup: Tab is Neovim's own.
    assert "vim.snippet.jump" in nvim.lua("return vim.fn.maparg('<Tab>', 'i', false, true).desc")


def test_attach_sets_default_keys_that_fall_back_to_their_own_meaning(
    nvim: Editor, workspace: Path
) -> None:
    nvim.open(workspace / "calc.py")
    nvim.wait_attached()
    assert "ouzel-accept" in nvim.lua("return vim.fn.maparg('<Tab>', 'i', false, true).desc")
    # With no suggestion on screen, Tab indents (four spaces in Python, after a `return`).
    nvim.type("Go<Tab>x<Esc>")
    wait_for(lambda: nvim.lines()[-1] == "    x", 10, "Tab to indent")


def test_the_users_own_mappings_are_kept(workspace: Path, tmp_path: Path) -> None:
    init = tmp_path / "init.lua"
    init.write_text(
        "vim.opt.runtimepath:prepend(vim.env.OUZEL_NVIM_PLUGIN)\n"
        "vim.keymap.set('i', '<Tab>', 'TAB')\n"
        "vim.keymap.set('i', '<C-l>', '<Plug>(ouzel-accept-word)')\n"
        "vim.lsp.enable('ouzel')\n"
    )
    with editor(workspace, tmp_path / "home", init=init) as nvim:
        nvim.open(workspace / "calc.py")
        nvim.wait_attached()
        assert nvim.nvim.funcs.maparg("<Tab>", "i") == "TAB"
        # The user mapped accept-word elsewhere, so its default key stays free.
        assert nvim.nvim.funcs.maparg("<M-Right>", "i") == ""
        assert "ouzel-accept-line" in nvim.lua(
            "return vim.fn.maparg('<M-C-Right>', 'i', false, true).desc"
        )


def test_loading_the_plugin_late_like_a_plugin_manager_works(
    workspace: Path, tmp_path: Path
) -> None:
    # lazy.nvim's `config` runs after startup sourced plugin/ files (README, lazy.nvim section).
    init = tmp_path / "init.lua"
    init.write_text(
        "vim.api.nvim_create_autocmd('VimEnter', { callback = function()\n"
        "  vim.opt.runtimepath:append(vim.env.OUZEL_NVIM_PLUGIN)\n"
        "  vim.cmd.runtime('plugin/ouzel.lua')\n"
        "  vim.lsp.enable('ouzel')\n"
        "end })\n"
    )
    with editor(workspace, tmp_path / "home", init=init) as nvim:
        nvim.open(workspace / "calc.py")
        nvim.wait_attached()
        assert "ouzel-accept" in nvim.lua("return vim.fn.maparg('<Tab>', 'i', false, true).desc")


def test_help_has_the_documented_tags(nvim: Editor, tmp_path: Path) -> None:
    import shutil

    docs = tmp_path / "docs-copy"
    shutil.copytree(PLUGIN / "doc", docs / "doc")
    nvim.lua("vim.opt.runtimepath:append(...)", str(docs))
    nvim.command(f"helptags {docs / 'doc'}")  # fails on a duplicate or malformed tag
    for tag in [
        "ouzel",
        "g:ouzel",
        "ouzel-options",
        "<Plug>(ouzel-accept-word)",
        ":Ouzel",
        "ouzel-remote",
        "ouzel-statusline",
    ]:
        nvim.command(f"help {tag}")
        assert nvim.lua("return vim.fn.expand('%:t')") == "ouzel.txt", tag
        nvim.command("helpclose")


def test_status_command_shows_what_the_server_reports(nvim: Editor, workspace: Path) -> None:
    nvim.open(workspace / "calc.py")
    nvim.wait_attached()
    nvim.command("Ouzel status")
    text = wait_for(
        lambda: (m := nvim.messages()) and "open documents" in m and m, 20, ":Ouzel status output"
    )
    assert "ouzel 0.1.0 (stdio: " in text
    assert str(workspace) in text
    assert "suggestions" in text and "on" in text


def test_toggle_turns_suggestions_off_and_on(nvim: Editor, workspace: Path) -> None:
    nvim.open(workspace / "calc.py")
    nvim.wait_attached()
    assert nvim.lua("return require('ouzel').statusline()") == "ouzel"
    nvim.command("Ouzel toggle")
    assert nvim.lua("return require('ouzel').statusline()") == "ouzel: off"
    assert nvim.lua("return require('ouzel').enabled()") is False
    nvim.command("Ouzel toggle")
    assert nvim.lua("return require('ouzel').statusline()") == "ouzel"


def test_unknown_subcommand_says_what_exists(nvim: Editor) -> None:
    with pytest.raises(NvimError, match="try :Ouzel status, index or toggle"):
        nvim.command("Ouzel frobnicate")


def test_checkhealth_reports_the_server_and_its_version(nvim: Editor, workspace: Path) -> None:
    nvim.open(workspace / "calc.py")
    nvim.wait_attached()
    report = checkhealth(nvim)
    assert "ERROR" not in report and "WARNING" not in report, report
    assert "OK Neovim 0.11.4" in report
    assert "OK version: ouzel 0.1.0" in report
    assert "OK ouzel 0.1.0 over stdio: " in report
    assert str(workspace) in report


def test_without_ouzel_on_path_the_checkouts_venv_is_used(workspace: Path, tmp_path: Path) -> None:
    checkout_ouzel = PLUGIN.parents[1] / ".venv" / "bin" / "ouzel"
    if not checkout_ouzel.exists():
        pytest.skip("this checkout has no .venv (scripts/setup makes one)")
    with editor(workspace, tmp_path / "home", env={"PATH": "/usr/bin:/bin"}) as nvim:
        assert nvim.lua("return vim.fn.exepath('ouzel')") == ""
        nvim.open(workspace / "calc.py")
        nvim.wait_attached()
        report = checkhealth(nvim)
        assert f"OK {checkout_ouzel} serve (from the ouzel checkout)" in report, report


def test_a_missing_server_command_is_reported_clearly(workspace: Path, tmp_path: Path) -> None:
    with editor(
        workspace,
        tmp_path / "home",
        options={"cmd": ["/nonexistent/ouzel", "serve"]},
    ) as nvim:
        nvim.open(workspace / "calc.py")
        message = wait_for(
            lambda: (m := nvim.messages()) and "cannot start the server" in m and m,
            10,
            "the missing-command message",
        )
        assert "/nonexistent/ouzel" in message
        assert nvim.lua("return #vim.lsp.get_clients({ name = 'ouzel' })") == 0
        report = checkhealth(nvim)
        assert "ERROR vim.g.ouzel.cmd" in report and "is not executable" in report


def test_server_settings_come_from_vim_g_ouzel_and_vim_lsp_config(
    nvim: Editor, workspace: Path
) -> None:
    nvim.lua(
        """
        vim.g.ouzel = { settings = { completion = { max_tokens = 9, debounce_ms = 5 } } }
        vim.lsp.config('ouzel', { settings = { ouzel = { completion = { max_tokens = 64 } } } })
        """
    )
    nvim.open(workspace / "calc.py")
    nvim.wait_attached()
    settings = nvim.lua("return require('ouzel').client().settings")
    # vim.lsp.config is the more specific place: it wins where both set a value.
    assert settings == {"ouzel": {"completion": {"max_tokens": 64, "debounce_ms": 5}}}


def test_invalid_options_are_reported_and_defaults_used(workspace: Path, tmp_path: Path) -> None:
    with editor(
        workspace,
        tmp_path / "home",
        options={"debounce_ms": "fast", "colour": "blue"},
    ) as nvim:
        nvim.open(workspace / "calc.py")
        nvim.wait_attached()
        messages = nvim.messages()
        assert (
            "vim.g.ouzel.debounce_ms must be a number (got string); using the default" in messages
        )
        assert "vim.g.ouzel.colour is not an option; ignored" in messages
        assert nvim.lua("return require('ouzel.config').get().debounce_ms") == 50


def test_tcp_to_a_port_nobody_listens_on_fails_visibly(workspace: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a free port, closed again: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with editor(workspace, tmp_path / "home", options={"port": port}) as nvim:
        report = checkhealth(nvim)
        assert f"ERROR 127.0.0.1:{port} is not reachable" in report
        nvim.command("bwipeout!")
        nvim.open(workspace / "calc.py")
        wait_for(
            lambda: f"Could not connect to 127.0.0.1:{port}" in nvim.messages(),
            10,
            "the connection error",
        )


def test_a_missing_model_file_is_explained_and_editing_goes_on(
    workspace: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-model.gguf"
    options = {"settings": {"models": {"local": {"model_path": str(missing)}}}}
    with editor(workspace, tmp_path / "home", options=options) as nvim:
        nvim.open(workspace / "calc.py")
        nvim.wait_attached()
        nvim.type("Go    x = ")
        message = wait_for(
            lambda: (m := nvim.messages()) and "unavailable" in m and m, 60, "the model error"
        )
        assert str(missing) in message and "models.local.model_path" in message
        nvim.type("1<Esc>")
        wait_for(lambda: nvim.lines()[-1] == "    x = 1", 10, "typing to go on")
        assert nvim.suggestion() is None
        report = checkhealth(nvim)
        assert "ERROR model failed to load" in report and str(missing) in report, report
        assert "set `models.local.model_path` to a GGUF file" in report


def test_a_server_that_dies_leaves_a_working_editor(nvim: Editor, workspace: Path) -> None:
    import os
    import signal

    nvim.open(workspace / "calc.py")
    nvim.wait_attached()
    (server,) = nvim.server_pids()
    os.kill(server, signal.SIGKILL)
    # Neovim reports the exit once every holder of the server's pipes has closed them: the
    # server's helper processes (parsers, Jedi definitions) release them when they start.
    wait_for(lambda: "quit with exit code" in nvim.messages(), 30, "Neovim to notice")
    nvim.command("messages clear")
    nvim.type("Go    y = 2<Esc>")
    wait_for(lambda: nvim.lines()[-1] == "    y = 2", 10, "typing to go on")
    assert nvim.lua("return require('ouzel').statusline()") == ""
    assert nvim.suggestion() is None
