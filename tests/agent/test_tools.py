"""The tools one by one: reading, searching, edits with hunks, stale files, undo, commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from agent_fixtures import RecordingConfirmer, make_context, tree_hashes

from ouzel.indexer.config import IndexConfig
from ouzel.indexer.index import WorkspaceIndex
from ouzel.inference.types import ToolCall
from ouzel.server.agent import commands
from ouzel.server.agent.checkpoint import TurnHistory
from ouzel.server.agent.confirm import EditDecision, EditProposal
from ouzel.server.agent.tools import TOOLS, AgentContext, ToolOutcome, execute, tool_specs
from ouzel.server.settings import AgentSettings

APP = "def greet(name):\n    return 'hi ' + name\n\n\ndef shout(name):\n    return name.upper()\n"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text(APP)
    (root / "src" / "use.py").write_text("from app import greet\n\nprint(greet('x'))\n")
    (root / "README.md").write_text("# Title\n")
    (root / ".gitignore").write_text("build/\n")
    (root / "build").mkdir()
    (root / "build" / "out.py").write_text("greet = 1\n")
    return root


async def call(ctx: AgentContext, tool: str, **args: Any) -> ToolOutcome:
    return await execute(ctx, ToolCall("c1", tool, json.dumps(args)))


async def test_read_file_with_ranges(ws: Path) -> None:
    ctx = make_context(ws, RecordingConfirmer())
    whole = await call(ctx, "read_file", path="src/app.py")
    assert whole.ok and whole.text.startswith("src/app.py (lines 1-6 of 6)\ndef greet")
    part = await call(ctx, "read_file", path="src/app.py", start_line=5, end_line=6)
    assert part.text.splitlines()[1:] == ["def shout(name):", "    return name.upper()"]
    past = await call(ctx, "read_file", path="src/app.py", start_line=99)
    assert past.refused and "past the end" in past.refused


async def test_bad_arguments_are_refused_with_reasons(ws: Path) -> None:
    ctx = make_context(ws, RecordingConfirmer())
    cases = [
        ToolCall("c", "read_file", "{not json"),
        ToolCall("c", "read_file", "[1, 2]"),
        ToolCall("c", "read_file", json.dumps({"path": 5})),
        ToolCall("c", "read_file", json.dumps({"path": "a", "extra": 1})),
        ToolCall("c", "read_file", json.dumps({"path": "src/app.py", "start_line": -3})),
        ToolCall("c", "no_such_tool", "{}"),
        ToolCall("c", "grep", json.dumps({"pattern": "("})),
        ToolCall("c", "grep", json.dumps({"pattern": "x" * 2000})),
        ToolCall("c", "read_file", json.dumps({"path": "src/\udcff.py"}, ensure_ascii=True)),
    ]
    for case in cases:
        outcome = await execute(ctx, case)
        assert not outcome.ok and outcome.refused and len(outcome.refused) > 10, case


async def test_list_glob_and_grep_follow_ignore_rules(ws: Path) -> None:
    ctx = make_context(ws, RecordingConfirmer())
    listing = await call(ctx, "list_dir", path=".")
    assert "src/" in listing.text and "README.md" in listing.text
    assert "build" not in listing.text.split("[")[0] and "ignored" in listing.text
    found = await call(ctx, "glob", pattern="*.py")
    assert found.text.splitlines() == ["src/app.py", "src/use.py"]
    hits = await call(ctx, "grep", pattern=r"greet\(", path=".")
    assert hits.text.splitlines() == [
        "src/app.py:1: def greet(name):",
        "src/use.py:3: print(greet('x'))",
    ]
    one = await call(ctx, "grep", pattern="upper", path="src/app.py")
    assert one.text == "src/app.py:6:     return name.upper()"
    only = await call(ctx, "grep", pattern="greet", glob="use.py")
    assert [line.split(":")[0] for line in only.text.splitlines()] == ["src/use.py", "src/use.py"]
    none = await call(ctx, "grep", pattern="GREET")
    assert "no matches" in none.text
    assert "src/app.py" in (await call(ctx, "grep", pattern="GREET", ignore_case=True)).text


async def test_grep_reports_crlf_emoji_and_cjk_lines(ws: Path) -> None:
    (ws / "w.txt").write_bytes("one\r\n名前 🙂 target\r\nthree\r\n".encode())
    ctx = make_context(ws, RecordingConfirmer())
    hits = await call(ctx, "grep", pattern="target")
    assert hits.text == "w.txt:2: 名前 🙂 target\r"


async def test_index_tools_use_the_real_index(ws: Path) -> None:
    index = WorkspaceIndex(ws, IndexConfig(watch=False))
    try:
        index.update_all()
        ctx = make_context(ws, RecordingConfirmer(), index=index)
        symbols = await call(ctx, "search_symbols", query="shout")
        assert symbols.text.startswith("function shout src/app.py:5")
        code = await call(ctx, "search_code", query="upper")
        assert "src/app.py:" in code.text and "name.upper()" in code.text
    finally:
        index.close()
    names = {spec.name for spec in tool_specs(AgentSettings(), index_available=False)}
    assert "search_symbols" not in names and "run_command" not in names
    none = await call(make_context(ws, RecordingConfirmer()), "search_symbols", query="x")
    assert none.refused and "index" in none.refused


async def test_definitions_through_jedi(ws: Path) -> None:
    ctx = make_context(ws, RecordingConfirmer())
    found = await call(ctx, "definitions", path="src/use.py", line=3, name="greet")
    assert "src/app.py:1: def greet(name):" in found.text
    stdlib = await call(ctx, "definitions", path="src/use.py", line=3, name="print")
    assert "outside the workspace" in stdlib.text
    missing = await call(ctx, "definitions", path="src/use.py", line=3, name="nothing")
    assert missing.refused and "not on line 3" in missing.refused


async def test_edit_is_proposed_confirmed_and_written(ws: Path) -> None:
    confirmer = RecordingConfirmer()
    ctx = make_context(ws, confirmer)
    await call(ctx, "read_file", path="src/app.py")
    outcome = await call(
        ctx,
        "propose_edit",
        path="src/app.py",
        old_text="def greet(name):",
        new_text="def welcome(name):",
        description="rename",
    )
    assert outcome.wrote == ("src/app.py",)
    (proposal,) = confirmer.asked_edits
    assert proposal.path == "src/app.py" and len(proposal.hunks) == 1 and not proposal.created
    assert (ws / "src" / "app.py").read_text() == APP.replace("greet", "welcome")
    assert ctx.stats.applied_first_try == 1


async def test_a_failed_match_then_a_retry_counts_as_feedback(ws: Path) -> None:
    ctx = make_context(ws, RecordingConfirmer())
    miss = await call(
        ctx,
        "propose_edit",
        path="src/app.py",
        old_text="def greet(person):\n    return 'hi ' + person",
        new_text="x",
    )
    assert miss.refused and "Did you mean" in miss.refused and "def greet(name):" in miss.refused
    hit = await call(
        ctx,
        "propose_edit",
        path="src/app.py",
        old_text="def greet(name):",
        new_text="def greet(person):",
    )
    assert hit.wrote
    assert (ctx.stats.refused, ctx.stats.applied_after_feedback, ctx.stats.applied_first_try) == (
        1,
        1,
        0,
    )


async def test_per_hunk_decisions_write_only_accepted_hunks(ws: Path) -> None:
    class FirstOnly(RecordingConfirmer):
        async def confirm_edit(self, proposal: EditProposal) -> EditDecision:
            self.asked_edits.append(proposal)
            return EditDecision(tuple(i == 0 for i in range(len(proposal.hunks))))

    confirmer = FirstOnly()
    ctx = make_context(ws, confirmer)
    outcome = await call(
        ctx,
        "propose_edit",
        path="src/app.py",
        old_text=APP,
        new_text=APP.replace("'hi '", "'hello '").replace("upper", "lower"),
    )
    assert len(confirmer.asked_edits[0].hunks) == 2
    assert "rejected hunk(s) 2 of 2" in outcome.text
    assert (ws / "src" / "app.py").read_text() == APP.replace("'hi '", "'hello '")


async def test_malformed_decisions_count_as_no(ws: Path) -> None:
    class Garbage(RecordingConfirmer):
        async def confirm_edit(self, proposal: EditProposal) -> EditDecision:
            return EditDecision((True, True, True, True))  # wrong length

    ctx = make_context(ws, Garbage())
    outcome = await call(ctx, "propose_edit", path="src/app.py", old_text="greet", new_text="hi")
    assert not outcome.wrote and (ws / "src" / "app.py").read_text() == APP
    outcome = await call(ctx, "propose_edit", path="src/use.py", old_text="print", new_text="p")
    assert outcome.refused


async def test_an_edit_on_a_file_changed_since_reading_is_refused(ws: Path) -> None:
    ctx = make_context(ws, RecordingConfirmer())
    await call(ctx, "read_file", path="src/app.py")
    (ws / "src" / "app.py").write_text(APP + "# the user's line\n")
    outcome = await call(
        ctx,
        "propose_edit",
        path="src/app.py",
        old_text="def greet(name):",
        new_text="def hello(name):",
    )
    assert outcome.refused and "changed since you read it" in outcome.refused
    assert (ws / "src" / "app.py").read_text().endswith("# the user's line\n")
    await call(ctx, "read_file", path="src/app.py")
    again = await call(
        ctx,
        "propose_edit",
        path="src/app.py",
        old_text="def greet(name):",
        new_text="def hello(name):",
    )
    assert again.wrote


async def test_crlf_files_keep_crlf(ws: Path) -> None:
    (ws / "win.py").write_bytes(b"a = 1\r\nb = 2\r\nc = 3\r\n")
    ctx = make_context(ws, RecordingConfirmer())
    outcome = await call(
        ctx, "propose_edit", path="win.py", old_text="a = 1\nb = 2\n", new_text="a = 1\nb = 20\n"
    )
    assert outcome.wrote
    assert (ws / "win.py").read_bytes() == b"a = 1\r\nb = 20\r\nc = 3\r\n"


async def test_undo_restores_the_turn_byte_for_byte(ws: Path) -> None:
    (ws / "bin.dat").write_bytes(bytes(range(256)).replace(b"\0", b"") + b"\xff\xfe tail\n")
    os.chmod(ws / "src" / "app.py", 0o741)
    before = tree_hashes(ws)
    modes = {p: p.stat().st_mode for p in ws.rglob("*")}
    history = TurnHistory()
    ctx = make_context(ws, RecordingConfirmer())
    ctx.checkpoint = history.start("t1")
    await call(ctx, "propose_edit", path="src/app.py", old_text="def greet", new_text="def hi")
    await call(ctx, "propose_edit", path="src/app.py", old_text="def hi", new_text="def hey")
    await call(ctx, "create_file", path="pkg/deep/new.py", content="x = 1\n")
    await call(ctx, "create_file", path="notes.md", content="n\n")
    await call(ctx, "propose_edit", path="src/use.py", old_text="print", new_text="print2")
    assert tree_hashes(ws) != before
    turn, problems = history.undo_last(ctx.sandbox)
    assert turn == "t1" and problems == []
    assert tree_hashes(ws) == before
    assert {p: p.stat().st_mode for p in ws.rglob("*")} == modes
    assert history.undo_last(ctx.sandbox) == (None, [])


async def test_undo_leaves_files_the_user_changed_afterwards(ws: Path) -> None:
    history = TurnHistory()
    ctx = make_context(ws, RecordingConfirmer())
    ctx.checkpoint = history.start("t1")
    await call(ctx, "propose_edit", path="src/app.py", old_text="def greet", new_text="def hi")
    await call(ctx, "create_file", path="new.txt", content="agent\n")
    (ws / "new.txt").write_text("user kept typing\n")
    _, problems = history.undo_last(ctx.sandbox)
    assert len(problems) == 1 and "new.txt" in problems[0]
    assert (ws / "new.txt").read_text() == "user kept typing\n"
    assert (ws / "src" / "app.py").read_text() == APP


async def test_run_command_is_off_unless_the_user_enabled_it(ws: Path) -> None:
    confirmer = RecordingConfirmer()
    off = await call(make_context(ws, confirmer), "run_command", argv=["touch", "x"])
    assert off.refused and "agent.run_command" in off.refused and not confirmer.asked_commands
    assert not (ws / "x").exists()


async def test_run_command_asks_with_argv_cwd_and_twice_when_destructive(ws: Path) -> None:
    confirmer = RecordingConfirmer(destructive=False)
    ctx = make_context(ws, confirmer, AgentSettings(run_command=True))
    made = await call(ctx, "run_command", argv=["sh", "-c", "echo hi > made.txt"], cwd="src")
    assert made.ok and (ws / "src" / "made.txt").read_text() == "hi\n"
    (asked,) = confirmer.asked_commands
    assert asked.argv == ("sh", "-c", "echo hi > made.txt")
    assert asked.cwd == str((ws / "src").resolve())
    assert asked.sandboxed == (commands.bwrap_path() is not None) and asked.risk
    wipe = await call(ctx, "run_command", argv=["rm", "-rf", "src"])
    assert wipe.refused and "destructive" in wipe.refused
    assert confirmer.asked_destructive[0].destructive == ("recursive delete (`rm -r`)",)
    assert (ws / "src" / "app.py").exists()
    outside = await call(ctx, "run_command", argv=["ls"], cwd="..")
    assert outside.refused and "outside" in outside.refused


def test_every_tool_has_a_plain_schema() -> None:
    for tool in TOOLS.values():
        schema = tool.spec().parameters
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        for prop in schema["properties"].values():
            assert "anyOf" not in prop and "title" not in prop and prop.get("type")
