from __future__ import annotations

from pathlib import Path

from ouzel.server.settings import Settings, load_for_workspace, load_settings


def test_defaults_are_valid() -> None:
    settings = Settings()
    assert settings.completion.enabled
    assert settings.models["local"].backend == "llama_cpp"
    assert ".env" in settings.index.secret_globs


def test_later_sources_win_and_camel_case_is_accepted() -> None:
    loaded = load_settings(
        {"completion": {"debounce_ms": 10, "max_tokens": 20}},
        {"completion": {"debounceMs": 99}},
    )
    assert loaded.problems == []
    assert loaded.settings.completion.debounce_ms == 99
    assert loaded.settings.completion.max_tokens == 20


def test_invalid_values_are_dropped_and_reported_keeping_the_rest() -> None:
    loaded = load_settings(
        {
            "completion": {"debounce_ms": -5, "max_tokens": 12},
            "log_level": "loud",
            "no_such_option": 1,
            "models": {"remote": {"backend": "openai", "base_url": "http://127.0.0.1:1/v1"}},
        }
    )
    settings = loaded.settings
    assert settings.completion.debounce_ms == Settings().completion.debounce_ms
    assert settings.completion.max_tokens == 12
    assert settings.log_level == "info"
    assert settings.models["remote"].base_url == "http://127.0.0.1:1/v1"
    text = "\n".join(loaded.problems)
    assert "completion.debounce_ms" in text and "the default 60" in text
    assert "log_level" in text and "no_such_option" in text


def test_files_are_layered(tmp_path: Path, isolated_home: Path) -> None:
    user = isolated_home / "config" / "ouzel" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("[completion]\nmax_tokens = 30\ndebounce_ms = 5\n")
    workspace = tmp_path / ".ouzel" / "config.toml"
    workspace.parent.mkdir()
    workspace.write_text("[completion]\nmax_tokens = 40\n")
    loaded = load_for_workspace(tmp_path, {"completion": {"debounce_ms": 7}}, {})
    assert loaded.settings.completion.max_tokens == 40
    assert loaded.settings.completion.debounce_ms == 7


def test_broken_toml_is_reported_not_fatal(tmp_path: Path) -> None:
    workspace = tmp_path / ".ouzel" / "config.toml"
    workspace.parent.mkdir()
    workspace.write_text("[completion\n")
    loaded = load_for_workspace(tmp_path)
    assert loaded.settings == Settings()
    assert any("cannot read settings" in p for p in loaded.problems)


def test_configuration_reference_is_fresh() -> None:
    from ouzel.server.settings_doc import render

    doc = Path(__file__).resolve().parents[1] / "docs" / "CONFIGURATION.md"
    assert doc.read_text() == render(), (
        "docs/CONFIGURATION.md is stale: run "
        "`python -m ouzel.server.settings_doc > docs/CONFIGURATION.md`"
    )


def test_every_setting_is_documented() -> None:
    from ouzel.server.settings import (
        CompletionSettings,
        ContextSettings,
        IndexSettings,
        ModelProfile,
        PrivacySettings,
        RoutingSettings,
    )

    for model in (
        Settings,
        CompletionSettings,
        ContextSettings,
        IndexSettings,
        ModelProfile,
        PrivacySettings,
        RoutingSettings,
    ):
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                continue
            assert field.description, f"{model.__name__}.{name} has no description"


def test_a_workspace_file_cannot_loosen_privacy(tmp_path: Path, isolated_home: Path) -> None:
    workspace = tmp_path / ".ouzel" / "config.toml"
    workspace.parent.mkdir()
    workspace.write_text(
        "[privacy]\nallow_remote = true\nredact_secrets = false\n"
        "[models.remote]\nbackend = 'openai'\nbase_url = 'https://collector.example/v1'\n"
    )
    loaded = load_for_workspace(tmp_path)
    assert loaded.settings.privacy.allow_remote is False
    assert loaded.settings.privacy.redact_secrets is True
    refused = [p for p in loaded.problems if "ignored in a workspace file" in p]
    assert sum("`privacy." in p for p in refused) == 2
    assert "remote" not in loaded.settings.models
    user = isolated_home / "config" / "ouzel" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("[privacy]\nallow_remote = true\n")
    assert load_for_workspace(tmp_path).settings.privacy.allow_remote is True


def test_camel_case_names_change_but_user_keys_do_not() -> None:
    loaded = load_settings(
        {
            "models": {
                "gpuBox": {
                    "backend": "openai",
                    "baseUrl": "http://127.0.0.1:8000/v1",
                    "headers": {"X-Api-Key": "k"},
                }
            },
            "routing": {"chat": ["gpuBox"]},
        }
    )
    assert loaded.problems == []
    profile = loaded.settings.models["gpuBox"]
    assert profile.base_url == "http://127.0.0.1:8000/v1"
    assert profile.headers == {"X-Api-Key": "k"}
    assert loaded.settings.routing.chat == ["gpuBox"]
