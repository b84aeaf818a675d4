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

HEADER = """# Configuration

Generated from `server/settings.py` by `python -m ouzel.server.settings_doc`; do not edit.

Sources, later wins: built-in defaults, the user file `$XDG_CONFIG_HOME/ouzel/config.toml`,
the workspace file `.ouzel/config.toml`, the editor's `initializationOptions`, and the
editor's `workspace/configuration` section `ouzel` (pulled again on
`workspace/didChangeConfiguration`). Keys may be `snake_case` or `camelCase`. An invalid
value is ignored with a message naming its source and the value used instead; the valid
rest still applies.

Example `.ouzel/config.toml`:

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


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            continue
        default = json.dumps(_default(field), ensure_ascii=False)
        if name == "models":
            default = '{"local": {"backend": "llama_cpp"}}'  # the full profile is below
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | `{_type_name(field)}` | `{default}` | {description} |")
    return rows


def _section(title: str, doc: str | None, model: type[BaseModel], prefix: str) -> list[str]:
    lines = [f"## {title}", ""]
    if doc:
        lines += [doc.strip(), ""]
    lines += ["| setting | type | default | meaning |", "|---|---|---|---|"]
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
