"""Prometheus metrics of a server process, and the `/metrics` endpoint.

One registry per process (not prometheus_client's global one, so tests can run several).
Latency buckets are fine where the 200 ms ghost-text target lives: 25 ms steps to 200 ms,
50 ms steps to 1 s, then coarser.

The endpoint listens on its own address (`--metrics HOST:PORT`, loopback by default). On a
non-loopback address it requires `Authorization: Bearer <token>`, a token of the same
tokens the LSP port accepts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

log = logging.getLogger("ouzel.server.metrics")

LATENCY_BUCKETS = (
    *(round(0.025 * step, 3) for step in range(1, 9)),  # 25 ms … 200 ms
    *(round(0.2 + 0.05 * step, 3) for step in range(1, 17)),  # 250 ms … 1 s
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
    30.0,
    60.0,
)


class ServerMetrics:
    """Every metric ouzel exports; names start with `ouzel_`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "ouzel_requests",
            "LSP requests answered, by method, outcome and user",
            ["method", "outcome", "user"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "ouzel_request_duration_seconds",
            "LSP request latency, from receipt to the answer being written",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.cancellations = Counter(
            "ouzel_cancellations",
            "requests cancelled by the client (or superseded) before their answer",
            ["method"],
            registry=registry,
        )
        self.sessions = Gauge(
            "ouzel_sessions", "open LSP sessions, by user", ["user"], registry=registry
        )
        self.auth_failures = Counter(
            "ouzel_auth_failures",
            "refused authentications, by reason (no_token, wrong_token, rate_limited)",
            ["reason"],
            registry=registry,
        )
        self.limit_closes = Counter(
            "ouzel_connections_closed_by_limit",
            "connections closed for breaking a limit (message_size, idle, header_deadline, …)",
            ["reason"],
            registry=registry,
        )
        self.inference_seconds = Histogram(
            "ouzel_inference_duration_seconds",
            "model calls through the router, by task and backend profile",
            ["task", "backend"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.first_token_seconds = Histogram(
            "ouzel_time_to_first_token_seconds",
            "time to the first generated token, by backend profile",
            ["backend"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.fallbacks = Counter(
            "ouzel_fallbacks",
            "requests served by a fallback profile, by task and backend",
            ["task", "backend"],
            registry=registry,
        )
        self.backend_healthy = Gauge(
            "ouzel_backend_healthy",
            "1 when a backend profile accepts requests (its breaker is closed), else 0",
            ["backend"],
            registry=registry,
        )
        self.index_state = Gauge(
            "ouzel_index_state",
            "1 for the current phase of each workspace index (idle, scanning, indexing, …)",
            ["root", "phase"],
            registry=registry,
        )
        self.index_files = Gauge(
            "ouzel_index_files", "files in each workspace index", ["root"], registry=registry
        )

    def request_done(self, method: str, seconds: float, outcome: str, user: str) -> None:
        self.requests.labels(method=method, outcome=outcome, user=user).inc()
        if outcome == "cancelled":
            self.cancellations.labels(method=method).inc()
        elif outcome == "ok":
            self.request_seconds.labels(method=method).observe(seconds)

    def inference_done(
        self, task: str, backend: str, total_s: float, first_token_s: float | None, fallback: bool
    ) -> None:
        self.inference_seconds.labels(task=task, backend=backend).observe(total_s)
        if first_token_s is not None:
            self.first_token_seconds.labels(backend=backend).observe(first_token_s)
        if fallback:
            self.fallbacks.labels(task=task, backend=backend).inc()

    def set_index_phases(self, phases: dict[str, tuple[str, int]]) -> None:
        self.index_state.clear()
        self.index_files.clear()
        for root, (phase, files) in phases.items():
            self.index_state.labels(root=root, phase=phase).set(1)
            self.index_files.labels(root=root).set(files)

    def set_backend_health(self, healthy: Iterable[tuple[str, bool]]) -> None:
        for backend, ok in healthy:
            self.backend_healthy.labels(backend=backend).set(1 if ok else 0)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: " + format, *args)


def serve_metrics(
    metrics: ServerMetrics,
    host: str,
    port: int,
    authorized: Callable[[str], bool] | None = None,
    before_scrape: Callable[[], None] = lambda: None,
) -> tuple[ThreadingWSGIServer, int]:
    """Serve `/metrics` on a daemon thread; returns the server (to shut down) and its port.

    `authorized(header)` gets the Authorization header when a bearer token is required.
    `before_scrape` refreshes gauges that are read, not pushed (backend health, index).
    """
    exporter = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if authorized is not None and not authorized(environ.get("HTTP_AUTHORIZATION", "")):
            start_response("401 Unauthorized", [("WWW-Authenticate", "Bearer")])
            return [b"a bearer token is required\n"]
        try:
            before_scrape()
        except Exception:
            log.exception("refreshing the metrics failed")
        return exporter(environ, start_response)

    httpd = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=httpd.serve_forever, name="ouzel-metrics", daemon=True).start()
    return httpd, int(httpd.server_port)
