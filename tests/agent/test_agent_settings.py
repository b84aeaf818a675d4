"""The agent's settings: a repository cannot turn commands on for its reader."""

from __future__ import annotations

from pathlib import Path

from ouzel.server.settings import AgentSettings, Settings, load_for_workspace


def test_defaults_are_safe() -> None:
    agent = Settings().agent
    assert agent == AgentSettings() and agent.run_command is False
    for name, field in AgentSettings.model_fields.items():
        extra = field.json_schema_extra
        assert isinstance(extra, dict) and extra.get("trust"), name
    assert AgentSettings.model_fields["run_command"].json_schema_extra == {"trust": "user"}


def test_a_workspace_file_cannot_enable_commands(tmp_path: Path, isolated_home: Path) -> None:
    root = tmp_path / "repo"
    (root / ".ouzel").mkdir(parents=True)
    (root / ".ouzel" / "config.toml").write_text("[agent]\nrun_command = true\nmax_steps = 5\n")
    loaded = load_for_workspace(root)
    assert loaded.settings.agent.run_command is False
    assert loaded.settings.agent.max_steps == 5
    assert any("agent.run_command" in problem for problem in loaded.problems)
    (root / ".ouzel" / "config.toml").write_text("[agent]\nrunCommand = true\n")
    assert load_for_workspace(root).settings.agent.run_command is False


def test_the_user_can_enable_commands(tmp_path: Path, isolated_home: Path) -> None:
    user = isolated_home / "config" / "ouzel" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("[agent]\nrun_command = true\n")
    assert load_for_workspace(tmp_path).settings.agent.run_command is True
    assert load_for_workspace(None, {"agent": {"runCommand": True}}).settings.agent.run_command
