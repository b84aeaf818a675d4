"""What a repository's own `.ouzel/config.toml` may set: the trust policy of every setting.

Why: cloning a repository and opening it must not let the repository choose where its
reader's code goes, which key is sent with it, which files count as secrets or which model
file is loaded. So every settings field carries `json_schema_extra={"trust": T}`:

- "any": a workspace file may set it (tuning: budgets, timeouts, templates);
- "user": only the user's own config, editor user settings or `initializationOptions`;
  refused from a workspace file with a message (endpoints, keys, headers, model files,
  routing: anything that widens what leaves the machine or what runs);
- "tighten": a workspace file may only make it stricter, in the direction named by
  `"stricter"`: "false"/"true" (the only value it may set) or "lower"/"higher" (relative
  to the value of the layers below);
- "extend": a workspace list is appended to the layers below, never replaces them.

Section fields (a nested model, or `dict[str, Model]` such as `models`) carry no marker:
the walk goes into them and judges their fields. A field without a valid marker is treated
as "user" here, and `tests/test_settings_trust.py` fails on it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

Trust = Literal["any", "user", "tighten", "extend"]
TRUSTS: tuple[Trust, ...] = get_args(Trust)
Stricter = Literal["false", "true", "lower", "higher"]
STRICTER: tuple[Stricter, ...] = get_args(Stricter)


def trust_of(field: FieldInfo) -> Trust | None:
    """The field's trust marker, or None when it has no valid one."""
    extra = field.json_schema_extra
    value = extra.get("trust") if isinstance(extra, dict) else None
    return value if value in TRUSTS else None


def stricter_of(field: FieldInfo) -> Stricter | None:
    """The stricter direction of a "tighten" field, or None when it names none."""
    extra = field.json_schema_extra
    value = extra.get("stricter") if isinstance(extra, dict) else None
    return value if value in STRICTER else None


def section_type(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """(model, is_table) for a section field: a nested model, or dict[str, model] (a table
    of named sections such as `models`); None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if get_origin(annotation) is dict:
        value_type = get_args(annotation)[1]
        if isinstance(value_type, type) and issubclass(value_type, BaseModel):
            return value_type, True
    return None


def snake(name: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in name)


class WorkspaceFilter:
    """Walk one workspace layer against the model; keep what it may set, report the rest."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.problems: list[str] = []

    def section(
        self, layer: Mapping[str, Any], model: type[BaseModel], lower: Any, path: str
    ) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for key, value in layer.items():
            key = str(key)
            name = snake(key) if snake(key) in model.model_fields else key
            field = model.model_fields.get(name)
            where = f"{path}{key}"
            if field is None:  # unknown: validation reports it under the name given
                kept[key] = copy.deepcopy(value)
                continue
            below = getattr(lower, name, None) if lower is not None else None
            nested = section_type(field.annotation)
            if nested is not None and isinstance(value, Mapping):
                model_type, is_table = nested
                if is_table:
                    kept[key] = self.table(value, model_type, below, where)
                else:
                    kept[key] = self.section(value, model_type, below, where + ".")
                continue
            if nested is None:
                decided = self.leaf(field, value, below, where)
                if decided is not _REFUSED:
                    kept[key] = decided
            else:
                kept[key] = copy.deepcopy(value)  # not a table: validation reports it
        return kept

    def table(
        self, layer: Mapping[str, Any], model: type[BaseModel], lower: Any, path: str
    ) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        known = lower if isinstance(lower, Mapping) else {}
        for name, value in layer.items():
            where = f"{path}.{name}"
            if not isinstance(value, Mapping):
                kept[name] = copy.deepcopy(value)
                continue
            cleaned = self.section(value, model, known.get(name), where + ".")
            if name in known:
                kept[name] = cleaned
            else:
                self.problems.append(
                    f"{self.origin}: `{where}` is ignored: a workspace file cannot define a new "
                    f"{model.__name__} (where it runs and how to reach it come only from your "
                    "user config or editor settings); define it there"
                )
        return kept

    def leaf(self, field: FieldInfo, value: Any, below: Any, where: str) -> Any:
        trust = trust_of(field)
        if trust == "any":
            return copy.deepcopy(value)
        if trust == "extend" and isinstance(value, list) and isinstance(below, list):
            return list(below) + [item for item in value if item not in below]
        if trust == "extend":
            return copy.deepcopy(value)  # not a list: validation reports it
        if trust == "tighten":
            stricter = stricter_of(field)
            if stricter is not None and _is_stricter(stricter, value, below):
                return copy.deepcopy(value)
            if stricter is not None:
                self.problems.append(
                    f"{self.origin}: `{where} = {_toml(value)}` is ignored in a workspace file: "
                    f"it may only make this setting stricter ({_DIRECTION[stricter]}); "
                    "set it in your user config or editor settings"
                )
                return _REFUSED
        self.problems.append(
            f"{self.origin}: `{where}` is ignored in a workspace file: only your user config "
            "or editor user settings may set it"
        )
        return _REFUSED


_REFUSED = object()

_DIRECTION: dict[Stricter, str] = {
    "false": "only `false`",
    "true": "only `true`",
    "lower": "only lower than what applies without the workspace file",
    "higher": "only higher than what applies without the workspace file",
}


def _is_stricter(direction: Stricter, value: Any, below: Any) -> bool:
    if direction in ("false", "true"):
        return value is (direction == "true")
    numbers = (int, float)
    if isinstance(value, bool) or not isinstance(value, numbers) or not isinstance(below, numbers):
        return False
    return value <= below if direction == "lower" else value >= below


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def filter_workspace_layer(
    layer: Mapping[str, Any], model: type[BaseModel], lower: BaseModel, origin: str
) -> tuple[dict[str, Any], list[str]]:
    """The part of a workspace layer it may set (extend lists already appended to `lower`),
    and one message per refused key naming `origin` and the key as written."""
    walk = WorkspaceFilter(origin)
    return walk.section(layer, model, lower, ""), walk.problems


def untrusted_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted names of the fields with no valid trust decision (sections are walked)."""
    missing: list[str] = []
    for name, field in model.model_fields.items():
        nested = section_type(field.annotation)
        if nested is not None:
            model_type, is_table = nested
            missing += untrusted_fields(
                model_type, f"{prefix}{name}.{'<name>.' if is_table else ''}"
            )
            continue
        trust = trust_of(field)
        if trust is None or (trust == "tighten" and stricter_of(field) is None):
            missing.append(f"{prefix}{name}")
    return missing


def restricted_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of the fields a workspace may not set freely (every trust but "any").

    A table of sections (`models`) is one path when any field inside is restricted: editors
    set it as one value."""
    paths: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        nested = section_type(field.annotation)
        if nested is not None:
            model_type, is_table = nested
            inner = restricted_paths(model_type, (*prefix, name))
            if is_table and inner:
                paths.append((*prefix, name))
            elif not is_table:
                paths += inner
            continue
        if trust_of(field) != "any":
            paths.append((*prefix, name))
    return paths
