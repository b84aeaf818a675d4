"""The indexer's defaults agree with the server's settings; settings become an IndexConfig."""

from __future__ import annotations

from pathlib import Path

from ouzel.indexer.config import DEFAULT_SECRET_GLOBS, IndexConfig, index_dir_for
from ouzel.server.features.indexing import index_config, too_broad
from ouzel.server.settings import DEFAULT_SECRET_GLOBS as SETTINGS_SECRET_GLOBS
from ouzel.server.settings import IndexSettings


def test_secret_defaults_are_the_same_list() -> None:
    assert list(DEFAULT_SECRET_GLOBS) == list(SETTINGS_SECRET_GLOBS)
    assert IndexConfig().secret_globs == list(SETTINGS_SECRET_GLOBS)


def test_settings_become_a_config() -> None:
    settings = IndexSettings(
        location="cache", max_file_bytes=5, exclude=["x/"], secret_globs=["*.k"], watch=False
    )
    config = index_config(settings)
    assert (config.location, config.max_file_bytes, config.exclude, config.secret_globs) == (
        "cache",
        5,
        ["x/"],
        ["*.k"],
    )
    assert config.watch is False and config.watch_debounce_ms == settings.watch_debounce_ms


def test_index_folders(tmp_path: Path) -> None:
    assert index_dir_for(tmp_path, IndexConfig()) == tmp_path / ".ouzel" / "index"
    cached = index_dir_for(tmp_path, IndexConfig(location="cache"))
    assert cached.name.startswith(tmp_path.name + "-") and ".ouzel" not in cached.parts
    assert cached != index_dir_for(tmp_path / "other", IndexConfig(location="cache"))
    explicit = tmp_path / "elsewhere"
    assert index_dir_for(tmp_path, IndexConfig(index_dir=explicit)) == explicit


def test_too_broad_roots(tmp_path: Path) -> None:
    assert too_broad(Path("/"))
    assert too_broad(Path.home())
    assert too_broad(tmp_path) == ""
