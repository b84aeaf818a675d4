"""`ouzel plan` inputs: a TOML file (flags override it) and benchmark rows (JSON lines,
one `PerfRow` per line, as `ouzel plan measure` writes them)."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ouzel.inference.planner.perf import PerfRow
from ouzel.inference.planner.workload import (
    DEFAULT_CLASSES,
    RequestClass,
    Slo,
    Team,
    TokenDist,
    WorkloadError,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_MODELS = ("qwen2.5-coder-7b", "qwen2.5-coder-32b")
DEFAULT_GPUS = ("L4", "A10G", "L40S", "A6000", "A100-80GB", "H100")
DEFAULT_TPS = (1, 2, 4)

_CLASS_NUMBERS = ("per_active_dev_per_min", "prefix_hit", "cancel_share")
_TEAM_KEYS = ("developers", "active_share", "working_hours")


@dataclass
class PlanInputs:
    team: Team = field(default_factory=Team)
    models: tuple[str, ...] = DEFAULT_MODELS
    gpus: tuple[str, ...] = DEFAULT_GPUS
    tps: tuple[int, ...] = DEFAULT_TPS
    max_replicas: int = 32
    prices: dict[str, float] = field(default_factory=dict)


def load_config(path: Path) -> PlanInputs:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkloadError(f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise WorkloadError(f"{path} is not valid TOML: {exc}") from exc
    return inputs_from(data, str(path))


def inputs_from(data: Mapping[str, Any], where: str = "config") -> PlanInputs:
    unknown = set(data) - {"team", "candidates", "prices", "classes"}
    if unknown:
        raise WorkloadError(f"{where}: unknown section(s) {', '.join(sorted(unknown))}")
    team_data = _table(data, "team", where)
    _only(team_data, _TEAM_KEYS, f"{where} [team]")
    classes = list(DEFAULT_CLASSES)
    for name, values in _table(data, "classes", where).items():
        index = next((i for i, c in enumerate(classes) if c.name == name), None)
        if index is None:
            raise WorkloadError(f"{where}: unknown class {name!r} (ghost, chat, agent)")
        classes[index] = _class_from(classes[index], values, f"{where} [classes.{name}]")
    defaults = Team()
    team = Team(
        developers=_whole(team_data.get("developers", defaults.developers), "developers", where),
        active_share=_number(
            team_data.get("active_share", defaults.active_share), "active_share", where
        ),
        working_hours=_number(
            team_data.get("working_hours", defaults.working_hours), "working_hours", where
        ),
        classes=tuple(classes),
    )
    candidates = _table(data, "candidates", where)
    _only(candidates, ("models", "gpus", "tp", "max_replicas"), f"{where} [candidates]")
    prices = {str(k): float(_number(v, k, where)) for k, v in _table(data, "prices", where).items()}
    return PlanInputs(
        team=team,
        models=tuple(_strings(candidates.get("models", DEFAULT_MODELS), "models", where)),
        gpus=tuple(_strings(candidates.get("gpus", DEFAULT_GPUS), "gpus", where)),
        tps=tuple(int(_number(t, "tp", where)) for t in candidates.get("tp", DEFAULT_TPS)),
        max_replicas=int(_number(candidates.get("max_replicas", 32), "max_replicas", where)),
        prices=prices,
    )


def _class_from(base: RequestClass, values: Any, where: str) -> RequestClass:
    if not isinstance(values, dict):
        raise WorkloadError(f"{where}: expected a table")
    _only(values, (*_CLASS_NUMBERS, "prompt", "output", "ttft_p95_ms", "itl_p95_ms"), where)
    changes: dict[str, Any] = {
        k: float(_number(values[k], k, where)) for k in _CLASS_NUMBERS if k in values
    }
    for key in ("prompt", "output"):
        if key in values:
            dist = values[key]
            if not isinstance(dist, dict) or not {"low", "high"} <= set(dist):
                raise WorkloadError(f"{where}: {key} needs {{low = N, high = N[, median = N]}}")
            changes[key] = TokenDist(
                int(dist["low"]),
                int(dist["high"]),
                int(dist["median"]) if "median" in dist else None,
            )
    slo = Slo(
        float(_number(values.get("ttft_p95_ms", base.slo.ttft_p95_ms), "ttft_p95_ms", where)),
        float(_number(values.get("itl_p95_ms", base.slo.itl_p95_ms), "itl_p95_ms", where)),
    )
    return replace(base, slo=slo, sources=(*base.sources, f"overridden in {where}"), **changes)


def _table(data: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise WorkloadError(f"{where}: [{key}] must be a table")
    return value


def _only(values: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = set(values) - set(allowed)
    if unknown:
        raise WorkloadError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(allowed)}"
        )


def _number(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WorkloadError(f"{where}: {key} must be a number, got {value!r}")
    return value


def _whole(value: Any, key: str, where: str) -> int:
    number = _number(value, key, where)
    if not float(number).is_integer():
        raise WorkloadError(f"{where}: {key} must be a whole number, got {value!r}")
    return int(number)


def _strings(value: Any, key: str, where: str) -> list[str]:
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise WorkloadError(f"{where}: {key} must be a list of names")
    return list(value)


ROW_FIELDS = {f.name for f in dataclasses.fields(PerfRow)}


def load_rows(path: Path) -> dict[tuple[str, str, int], PerfRow]:
    """Benchmark rows from a JSON-lines file; a later row for the same key wins."""
    rows: dict[tuple[str, str, int], PerfRow] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return rows
    except OSError as exc:
        raise WorkloadError(f"cannot read {path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            row = PerfRow(**{k: v for k, v in data.items() if k in ROW_FIELDS})
        except (ValueError, TypeError) as exc:
            raise WorkloadError(f"{path}:{number}: not a benchmark row ({exc})") from exc
        rows[(row.model, row.gpu, row.tp)] = row
    return rows


def append_row(path: Path, row: PerfRow, extra: Mapping[str, Any] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**dataclasses.asdict(row), **(extra or {})}
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
