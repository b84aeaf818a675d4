"""Generate docs/CONFIGURATION.md from the settings model.

Run `python -m ouzel.server.settings_doc > docs/CONFIGURATION.md`; a test fails when the
file is stale.
"""

from __future__ import annotations

import json
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ouzel.server.settings import ModelProfile, Settings
from ouzel.server.settings_trust import section_type, stricter_of, trust_of

HEADER = """# Configuration

Generated from `server/settings.py` by `python -m ouzel.server.settings_doc`; do not edit.

Sources, later wins: built-in defaults, the user file `$XDG_CONFIG_HOME/ouzel/config.toml`,
the workspace file `.ouzel/config.toml`, the editor's `initializationOptions`, and the
editor's `workspace/configuration` section `ouzel` (pulled again on
`workspace/didChangeConfiguration`). Keys may be `snake_case` or `camelCase`. An invalid
value is ignored with a message naming its source and the value used instead; the valid
rest still applies.

A repository's `.ouzel/config.toml` (and its `.vscode/settings.json`) comes with the code, so
it may not choose where code goes. The column "in `.ouzel/config.toml`" says what a
workspace file may do with each setting: **yes**; **no** (only your user config, editor
user settings or `initializationOptions`; a workspace value is ignored with a message naming
the file and key); **stricter only** (e.g. `privacy.allow_remote` only `false`); **adds**
(the list is appended to the defaults and your own list, never replaces them). A model
profile defined only in a workspace file is ignored: its endpoint, key and model file are
"no" keys, and so is `routing`. In VS Code every setting that is not "yes" is
`machine`-scoped: workspace values are ignored.

Example user config `$XDG_CONFIG_HOME/ouzel/config.toml` (the `models` part would be
ignored in a repository's `.ouzel/config.toml`):

```toml
log_level = "info"

[completion]
debounce_ms = 60
max_tokens = 48

[models.local]
backend = "llama_cpp"
model_path = "/models/qwen2.5-coder-1.5b-q8_0.gguf"

[models.remote]
backend = "openai"
base_url = "http://127.0.0.1:8000/v1"
model = "qwen2.5-coder-7b"
api_key_env = "OUZEL_REMOTE_KEY"
```
"""


def _type_name(field: FieldInfo) -> str:
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return " \\| ".join(json.dumps(arg) for arg in get_args(annotation))
    text = str(annotation) if get_args(annotation) else getattr(annotation, "__name__", None)
    return (text or str(annotation)).replace("typing.", "").replace("NoneType", "None")


def _default(field: FieldInfo) -> Any:
    factory = field.default_factory
    value = factory() if factory is not None else field.default  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, dict):
        return {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in value.items()}
    return value


_STRICTER_WORDS = {
    "false": "only `false`",
    "true": "only `true`",
    "lower": "only lower",
    "higher": "only higher",
}


def _workspace_rule(field: FieldInfo) -> str:
    """What a workspace file may do with the field (see server/settings_trust.py)."""
    if section_type(field.annotation) is not None:
        return "per field (below)"
    trust = trust_of(field)
    if trust == "any":
        return "yes"
    if trust == "extend":
        return "adds"
    stricter = stricter_of(field)
    if trust == "tighten" and stricter is not None:
        return f"stricter only ({_STRICTER_WORDS[stricter]})"
    return "no"


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            continue
        default = json.dumps(_default(field), ensure_ascii=False)
        if name == "models":
            # the full profile is below
            default = (
                '{"local": {"backend": "llama_cpp"}, "local-chat": {"backend": "llama_cpp", '
                '"model": "qwen2.5-coder-1.5b"}}'
            )
        description = (field.description or "").replace("|", "\\|")
        rows.append(
            f"| `{prefix}{name}` | `{_type_name(field)}` | `{default}` | "
            f"{_workspace_rule(field)} | {description} |"
        )
    return rows


def _section(title: str, doc: str | None, model: type[BaseModel], prefix: str) -> list[str]:
    lines = [f"## {title}", ""]
    if doc:
        lines += [doc.strip(), ""]
    lines += [
        "| setting | type | default | in `.ouzel/config.toml` | meaning |",
        "|---|---|---|---|---|",
    ]
    lines += _rows(model, prefix)
    lines.append("")
    return lines


def render() -> str:
    lines = [HEADER]
    lines += _section("General", None, Settings, "")
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines += _section(f"`{name}`", annotation.__doc__, annotation, f"{name}.")
    lines += _section(
        "`models.<name>` (one table per model profile)",
        ModelProfile.__doc__,
        ModelProfile,
        "models.<name>.",
    )
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
