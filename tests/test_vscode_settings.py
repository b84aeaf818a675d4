"""The VS Code extension's settings (clients/vscode/package.json) match the server's model.

The contribution is generated from `ouzel.server.settings.Settings` by
clients/vscode/scripts/settings_contribution.py; these tests fail when someone changes the
model without regenerating, and check independently that what VS Code would send with
every default is exactly the server's default settings.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

from ouzel.server.settings import Settings, load_settings
from ouzel.server.settings_trust import restricted_paths

EXTENSION = Path(__file__).resolve().parent.parent / "clients" / "vscode"
PACKAGE_JSON = EXTENSION / "package.json"
GENERATOR = EXTENSION / "scripts" / "settings_contribution.py"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_contribution", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def package() -> dict[str, Any]:
    return json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))


def contributed(package: dict[str, Any]) -> dict[str, dict[str, Any]]:
    properties: dict[str, dict[str, Any]] = {}
    for category in package["contributes"]["configuration"]:
        properties.update(category["properties"])
    return properties


def server_properties(package: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        key: value
        for key, value in contributed(package).items()
        if key.split(".")[1] not in ("server", "trace")
    }


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def model_leaves(model: type[BaseModel], prefix: str = "ouzel") -> dict[str, Any]:
    """Full VS Code names of the model's settings → their pydantic FieldInfo."""
    leaves: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = f"{prefix}.{camel(name)}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            leaves.update(model_leaves(annotation, key))
        else:
            leaves[key] = info
    return leaves


def test_package_json_is_generated_from_the_current_model(generator: ModuleType) -> None:
    current = PACKAGE_JSON.read_text(encoding="utf-8")
    fresh = generator.render(json.loads(current))
    assert fresh == current, (
        "clients/vscode/package.json does not match the settings model: run "
        "`python clients/vscode/scripts/settings_contribution.py` and commit the result"
    )


def test_every_model_setting_is_contributed_and_nothing_else(package: dict[str, Any]) -> None:
    assert set(server_properties(package)) == set(model_leaves(Settings))


def test_types_match_the_model(package: dict[str, Any]) -> None:
    properties = server_properties(package)
    expected_types = {bool: "boolean", int: "integer", float: "number", str: "string"}
    for key, info in model_leaves(Settings).items():
        entry = properties[key]
        if info.annotation in expected_types:
            assert entry["type"] == expected_types[info.annotation], key
        for bound in info.metadata:
            for attribute, schema_key in (
                ("ge", "minimum"),
                ("le", "maximum"),
                ("gt", "exclusiveMinimum"),
                ("lt", "exclusiveMaximum"),
            ):
                if hasattr(bound, attribute):
                    assert entry[schema_key] == getattr(bound, attribute), key
    assert properties["ouzel.logLevel"]["enum"] == ["error", "warning", "info", "debug"]
    assert properties["ouzel.completion.enabled"]["type"] == "boolean"
    assert properties["ouzel.index.exclude"]["type"] == "array"


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"ouzel.completion.debounceMs": 60} → {"completion": {"debounceMs": 60}}, as VS Code sends."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")[1:]
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def test_contributed_defaults_are_the_server_defaults(package: dict[str, Any]) -> None:
    defaults = {key: entry["default"] for key, entry in server_properties(package).items()}
    loaded = load_settings(nest(defaults), origin="VS Code defaults")
    assert loaded.problems == []
    assert loaded.settings == Settings()


def test_every_setting_a_user_can_pick_is_accepted(package: dict[str, Any]) -> None:
    """Each enum value and each bound VS Code allows is a value the server accepts too."""
    for key, entry in server_properties(package).items():
        candidates: list[Any] = list(entry.get("enum", []))
        candidates += [entry[bound] for bound in ("minimum", "maximum") if bound in entry]
        for value in candidates:
            loaded = load_settings(nest({key: value}), origin="VS Code")
            assert loaded.problems == [], (key, value)


def test_client_settings_do_not_collide_with_the_model(package: dict[str, Any]) -> None:
    client_keys = [key for key in contributed(package) if key not in server_properties(package)]
    assert sorted(client_keys) == sorted(
        [
            "ouzel.server.mode",
            "ouzel.server.command",
            "ouzel.server.args",
            "ouzel.server.host",
            "ouzel.server.port",
            "ouzel.server.tokenFile",
            "ouzel.server.tls",
            "ouzel.server.tlsCa",
            "ouzel.trace.server",
        ]
    )
    model_sections = {key.split(".")[1] for key in model_leaves(Settings)}
    assert model_sections.isdisjoint({"server", "trace"})


def test_untrusted_workspaces_cannot_choose_the_server(package: dict[str, Any]) -> None:
    """A cloned repository must not pick the command that runs or where code is sent."""
    untrusted = package["capabilities"]["untrustedWorkspaces"]
    assert untrusted["supported"] == "limited"
    server_settings = [key for key in contributed(package) if key.startswith("ouzel.server.")]
    assert sorted(untrusted["restrictedConfigurations"]) == sorted(server_settings)


def test_settings_a_workspace_may_not_set_are_machine_scoped(package: dict[str, Any]) -> None:
    """A repository's `.vscode/settings.json` is as untrusted as its `.ouzel/config.toml`:
    VS Code ignores workspace values of `machine`-scoped settings."""
    properties = server_properties(package)
    restricted = {
        "ouzel." + ".".join(camel(part) for part in path) for path in restricted_paths(Settings)
    }
    for key in (
        "ouzel.models",
        "ouzel.routing.inlineCompletion",
        "ouzel.routing.chat",
        "ouzel.privacy.allowRemote",
        "ouzel.index.secretGlobs",
        "ouzel.index.exclude",
        "ouzel.index.location",
    ):
        assert key in restricted
    for key, schema in properties.items():
        assert (schema.get("scope") == "machine") is (key in restricted), key
        assert "trust" not in json.dumps(schema), f"{key} leaks the server's trust marker"
