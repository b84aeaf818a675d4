"""Generate the `contributes.configuration` of package.json from ouzel's settings model.

The server's pydantic model (`ouzel.server.settings.Settings`) is the single source of truth:
every server setting becomes `ouzel.<camelCase path>` with the model's type, bounds, default
and description. The extension's own settings (how to reach the server) are listed here.

    python clients/vscode/scripts/settings_contribution.py          # rewrite package.json
    python clients/vscode/scripts/settings_contribution.py --check  # exit 1 when stale

`tests/test_vscode_settings.py` runs the check.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ouzel.server.settings import ModelProfile, Settings
from ouzel.server.settings_trust import restricted_paths

PACKAGE_JSON = Path(__file__).resolve().parent.parent / "package.json"
PREFIX = "ouzel"

# Settings the extension reads itself; they never reach the server.
CLIENT_SETTINGS: dict[str, dict[str, Any]] = {
    "ouzel.server.mode": {
        "type": "string",
        "enum": ["stdio", "tcp"],
        "enumDescriptions": [
            "Start `ouzel serve` as a child process and talk over stdin/stdout.",
            "Connect to an `ouzel serve --tcp HOST:PORT` that is already running.",
        ],
        "default": "stdio",
        "markdownDescription": "How to reach the ouzel language server.",
        "order": 0,
    },
    "ouzel.server.command": {
        "type": "string",
        "default": "",
        "markdownDescription": "The `ouzel` executable for `stdio` mode. Empty: the workspace's "
        "`.venv/bin/ouzel` when there is one, else `ouzel` on `PATH`.",
        "scope": "machine-overridable",
        "order": 1,
    },
    "ouzel.server.args": {
        "type": "array",
        "items": {"type": "string"},
        "default": ["serve"],
        "markdownDescription": "Arguments for the `ouzel` executable in `stdio` mode.",
        "scope": "machine-overridable",
        "order": 2,
    },
    "ouzel.server.host": {
        "type": "string",
        "default": "127.0.0.1",
        "markdownDescription": "Host of the ouzel server in `tcp` mode (use an SSH tunnel for "
        "another machine: `ssh -L 2087:127.0.0.1:2087 HOST`).",
        "order": 3,
    },
    "ouzel.server.port": {
        "type": "integer",
        "minimum": 1,
        "maximum": 65535,
        "default": 2087,
        "markdownDescription": "Port of the ouzel server in `tcp` mode.",
        "order": 4,
    },
    "ouzel.server.tokenFile": {
        "type": "string",
        "default": "",
        "markdownDescription": "File holding the token of a remote server (`ouzel serve "
        "--token-file`), sent in `initialize` in `tcp` mode. Empty: the `OUZEL_TOKEN` "
        "environment variable, if set.",
        "scope": "machine-overridable",
        "order": 5,
    },
    "ouzel.server.tls": {
        "type": "boolean",
        "default": False,
        "markdownDescription": "Talk TLS to the server in `tcp` mode (a server started with "
        "`--tls-cert` and `--tls-key`).",
        "order": 6,
    },
    "ouzel.server.tlsCa": {
        "type": "string",
        "default": "",
        "markdownDescription": "CA certificate (PEM) that signed the server's certificate, "
        "e.g. a self-signed one. Empty: the system's CAs.",
        "scope": "machine-overridable",
        "order": 7,
    },
    "ouzel.trace.server": {
        "type": "string",
        "enum": ["off", "messages", "verbose"],
        "default": "off",
        "markdownDescription": "Log the LSP messages between VS Code and ouzel in the `ouzel` "
        "output channel.",
        "order": 8,
    },
}
# Top-level names of CLIENT_SETTINGS: the server model must not use them.
CLIENT_SECTIONS = frozenset(key.split(".")[1] for key in CLIENT_SETTINGS)

# Settings an untrusted workspace may not set: they choose what runs and where code goes.
RESTRICTED_IN_UNTRUSTED_WORKSPACES = [
    key for key in CLIENT_SETTINGS if key.startswith("ouzel.server.")
]

SCHEMA_KEYS_DROPPED = ("title", "description", "default")
# The server's trust markers (server/settings_trust.py) are not JSON schema.
TRUST_KEYS = ("trust", "stricter")

# A workspace's `.vscode/settings.json` comes with the repository just like its
# `.ouzel/config.toml`: every setting a workspace file may not set freely (trust other than
# "any") is `machine`-scoped, so VS Code takes it only from the user's own settings.
RESTRICTED_SCOPE = "machine"


RESTRICTED = frozenset(restricted_paths(Settings))


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _resolve(schema: Any, defs: dict[str, Any]) -> Any:
    """Inline `$ref`s, camelCase nested property names and drop titles."""
    if isinstance(schema, list):
        return [_resolve(item, defs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return _resolve(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" or key in TRUST_KEYS:
            continue
        if key == "properties":
            out[key] = {camel(name): _resolve(prop, defs) for name, prop in value.items()}
        else:
            out[key] = _resolve(value, defs)
    return out


def _compact_profile(profile: ModelProfile) -> dict[str, Any]:
    """A model profile as a user would write it: the backend plus what differs."""
    dumped = profile.model_dump(mode="json", exclude_defaults=True)
    dumped.setdefault("backend", profile.backend)
    return {camel(key): value for key, value in dumped.items()}


def _default(path: tuple[str, ...]) -> Any:
    value: Any = Settings()
    for part in path:
        value = getattr(value, part)
    if isinstance(value, dict) and all(isinstance(v, ModelProfile) for v in value.values()):
        return {name: _compact_profile(profile) for name, profile in value.items()}
    return json.loads(json.dumps(value, default=lambda v: v.model_dump(mode="json")))


def _leaf(path: tuple[str, ...], schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    entry = {k: v for k, v in _resolve(schema, defs).items() if k not in SCHEMA_KEYS_DROPPED}
    entry["default"] = _default(path)
    description = schema.get("description")
    if description:
        entry["markdownDescription"] = description
    if path in RESTRICTED:
        entry["scope"] = RESTRICTED_SCOPE
    return entry


def server_settings() -> list[dict[str, Any]]:
    """One configuration category per settings section, in the model's order."""
    schema = Settings.model_json_schema()
    defs = schema.get("$defs", {})
    general: dict[str, Any] = {}
    categories: list[dict[str, Any]] = []
    for name, prop in schema["properties"].items():
        if camel(name) in CLIENT_SECTIONS:
            raise SystemExit(f"settings field {name!r} collides with the extension's own settings")
        ref = prop.get("$ref")
        if ref is None:
            general[f"{PREFIX}.{camel(name)}"] = _leaf((name,), prop, defs)
            continue
        section = defs[ref.rsplit("/", 1)[1]]
        properties = {
            f"{PREFIX}.{camel(name)}.{camel(field)}": _leaf((name, field), field_schema, defs)
            for field, field_schema in section["properties"].items()
        }
        title = (section.get("description") or name).rstrip(".")
        categories.append({"id": f"ouzel.{camel(name)}", "title": title, "properties": properties})
    return [{"id": "ouzel.general", "title": "General", "properties": general}, *categories]


def contribution() -> list[dict[str, Any]]:
    connection = {"id": "ouzel.server", "title": "Server", "properties": CLIENT_SETTINGS}
    categories = [connection, *server_settings()]
    for order, category in enumerate(categories):
        category["order"] = order
    return categories


def render(package: dict[str, Any]) -> str:
    package.setdefault("contributes", {})["configuration"] = contribution()
    package["capabilities"] = {
        "untrustedWorkspaces": {
            "supported": "limited",
            "description": "In an untrusted folder ouzel does not run the folder's own "
            "`.venv/bin/ouzel` and ignores the folder's `ouzel.server.*` settings.",
            "restrictedConfigurations": RESTRICTED_IN_UNTRUSTED_WORKSPACES,
        }
    }
    return json.dumps(package, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when package.json is stale")
    args = parser.parse_args(argv)
    current = PACKAGE_JSON.read_text(encoding="utf-8")
    fresh = render(json.loads(current))
    if args.check:
        if fresh != current:
            print(
                f"{PACKAGE_JSON} is stale: run python {Path(__file__).as_posix()}",
                file=sys.stderr,
            )
            return 1
        return 0
    if fresh != current:
        PACKAGE_JSON.write_text(fresh, encoding="utf-8")
        print(f"updated {PACKAGE_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
