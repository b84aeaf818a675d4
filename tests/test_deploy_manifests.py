"""deploy/: the compose file against the compose-spec schema, the Helm chart rendered by Helm's
own engine (helm-python-sdk), linted, and every manifest validated against the Kubernetes
schemas (kubernetes-models). Tools: scripts/setup-deploy-check (scripts/test runs it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ouzel.server.cli import _load_feature_commands, build_parser

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
CHART = ROOT / "deploy" / "helm" / "ouzel"
TOOLS = ROOT / "deploy" / "tools"
SETUP_HINT = "run ./scripts/setup-deploy-check"


def _check_jsonschema() -> str:
    found = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"check-jsonschema is not installed: {SETUP_HINT}")
    return found


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    try:
        import helm_python
    except ImportError:
        pytest.fail(f"helm-python-sdk is not installed: {SETUP_HINT}")
    chart = helm_python.Chart.load(str(CHART))
    rendered = chart.render(values or {}, name="team", namespace="ouzel", is_install=True)
    documents: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            documents.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return documents


def validate_kubernetes(documents: list[dict[str, Any]]) -> str:
    if not (TOOLS / "node_modules" / "kubernetes-models").is_dir():
        pytest.fail(f"kubernetes-models is not installed: {SETUP_HINT}")
    done = subprocess.run(
        ["node", str(TOOLS / "validate-k8s.mjs")],
        input=json.dumps(documents),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=TOOLS,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def parse_ouzel_args(args: list[str]) -> Any:
    """ouzel's own parser: every flag a manifest passes must exist."""
    _load_feature_commands()
    return build_parser().parse_args(args)


def test_compose_file_matches_the_compose_spec() -> None:
    done = subprocess.run(
        [_check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {"vllm", "llama", "ouzel", "prometheus", "grafana"} <= set(services)
    assert services["vllm"]["profiles"] == ["gpu"] and services["llama"]["profiles"] == ["cpu"]
    for model_server in ("vllm", "llama"):
        assert services[model_server]["networks"]["default"]["aliases"] == ["llm"]
    assert "--enable-prefix-caching" in services["vllm"]["command"]
    served = parse_ouzel_args(services["ouzel"]["command"])
    assert served.tokens_file and served.tls_cert and served.metrics == ("0.0.0.0", 9464)


def test_a_broken_compose_file_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  ouzel:\n    image: 3\n    ports: {a: b}\n")
    done = subprocess.run(
        [_check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"llmd": {"enabled": False}, "keda": {"enabled": False}},
        {
            "vllm": {"enabled": False},
            "llmd": {"enabled": False},
            "serviceMonitor": {"enabled": False},
        },
    ],
    ids=["defaults", "no-llmd-no-keda", "external-model-server"],
)
def test_helm_chart_renders_to_valid_kubernetes_objects(values: dict[str, Any]) -> None:
    documents = render(values)
    report = validate_kubernetes(documents)
    assert report.count("ok ") == len(documents)
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in documents}
    assert {("Deployment", "team"), ("Secret", "team-tokens"), ("NetworkPolicy", "team")} <= kinds
    assert ("ConfigMap", "team-dashboard") in kinds


def test_helm_chart_wiring() -> None:
    documents = render({"tokens": '{"version": 1, "tokens": {}}', "metricsToken": "t"})
    by_name = {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents}
    ouzel = by_name[("Deployment", "team")]["spec"]["template"]["spec"]["containers"][0]
    served = parse_ouzel_args(ouzel["args"])
    assert served.tcp == ("0.0.0.0", 7658) and served.max_message_mb == 32.0
    vllm = by_name[("Deployment", "team-vllm")]["spec"]["template"]["spec"]["containers"][0]
    assert vllm["command"][:2] == ["vllm", "serve"] and "--enable-prefix-caching" in vllm["args"]
    config = by_name[("ConfigMap", "team-config")]["data"]["config.toml"]
    assert 'base_url = "http://team-llmd:8080/v1"' in config
    epp = yaml.safe_load(by_name[("ConfigMap", "team-llmd")]["data"]["epp-config.yaml"])
    assert "prefix-cache-scorer" in {plugin["type"] for plugin in epp["plugins"]}
    scaler = by_name[("ScaledObject", "team-vllm")]["spec"]
    assert [t["type"] for t in scaler["triggers"]] == ["prometheus"]
    assert "vllm:num_requests_waiting" in scaler["triggers"][0]["metadata"]["query"]
    dashboard = json.loads(by_name[("ConfigMap", "team-dashboard")]["data"]["ouzel.json"])
    expressions = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in ("ouzel_request_duration_seconds_bucket", "ouzel_sessions", "ouzel_fallbacks"):
        assert metric in expressions


def test_helm_lint_is_clean() -> None:
    import helm_python

    report = helm_python.lint(str(CHART), strict=True)
    errors = [m for m in report.get("messages") or [] if m.get("severity", 0) >= 2]
    assert not errors and not report.get("errors"), report
