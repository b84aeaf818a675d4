"""The team server: many TCP connections, each its own session, one engine.

What a shared server needs on top of remote mode (server/remote.py):
- per-user tokens (server/tokens.py), re-read on change; a revoked user's open
  connections are closed within `tokens_reload_s`;
- failed authentications rate-limited per peer address (a token bucket), so a token cannot
  be guessed at line rate;
- per-connection limits: message size (refused from Content-Length, before the body is
  read), concurrent requests, idle and header/body deadlines (server/transport.py), and the
  TLS handshake deadline (given to asyncio.start_server);
- one place that sees every connection, for logs and metrics labelled by user.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ouzel.server.metrics import ServerMetrics, serve_metrics
from ouzel.server.pathmap import PathMap
from ouzel.server.remote import (
    REQUEST_FAILED,
    SINGLE_TOKEN_USER,
    AuthResult,
    ConnectionLimits,
    RemoteConfig,
    token_matches,
)
from ouzel.server.tokens import TokensFileError, TokenStore
from ouzel.server.transport import (
    ConnectionLimitExceeded,
    StreamWriterAdapter,
    read_message_limited,
)

log = logging.getLogger("ouzel.server.team")


class AuthRateLimiter:
    """A token bucket of failed authentications per peer address."""

    MAX_PEERS = 10_000  # beyond this, full buckets are forgotten

    def __init__(
        self, burst: int, per_minute: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = float(max(1, burst))
        self.refill_per_s = max(per_minute, 0.001) / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # peer → (tokens, at)

    def _level(self, peer: str) -> float:
        tokens, at = self._buckets.get(peer, (self.burst, self.clock()))
        return min(self.burst, tokens + (self.clock() - at) * self.refill_per_s)

    def retry_after(self, peer: str) -> float:
        """0 when `peer` may try now; else the seconds until its next attempt."""
        level = self._level(peer)
        return 0.0 if level >= 1.0 else (1.0 - level) / self.refill_per_s

    def failed(self, peer: str) -> None:
        self._buckets[peer] = (max(0.0, self._level(peer) - 1.0), self.clock())
        if len(self._buckets) > self.MAX_PEERS:
            self._buckets = {
                name: (tokens, at)
                for name, (tokens, at) in self._buckets.items()
                if self._level(name) < self.burst
            }


@dataclass(eq=False)
class Connection:
    peer: str
    protocol: Any
    writer: asyncio.StreamWriter
    user: str | None = None
    opened: float = field(default_factory=time.monotonic)

    def close(self, reason: str) -> None:
        log.warning("closing the connection of %s from %s: %s", self.user, self.peer, reason)
        with contextlib.suppress(Exception):
            self.protocol.send_error(None, REQUEST_FAILED, f"ouzel closed the connection: {reason}")
        self.writer.close()


ServeConnection = Callable[..., Awaitable[int]]


class TeamServer:
    """Process-wide state of a TCP server: identities, rate limits, open connections."""

    def __init__(self, remote: RemoteConfig, metrics: ServerMetrics | None = None) -> None:
        self.remote = remote
        self.limits: ConnectionLimits = remote.limits
        self.metrics = metrics or ServerMetrics()
        self.store = TokenStore(remote.tokens_file) if remote.tokens_file else None
        self.rate = AuthRateLimiter(self.limits.auth_burst, self.limits.auth_failures_per_minute)
        self.connections: set[Connection] = set()
        self.metrics_port: int | None = None

    # --- authentication ------------------------------------------------------------------

    def authenticate(self, peer: str, offered: object) -> AuthResult:
        wait = self.rate.retry_after(peer)
        if wait > 0:
            self.metrics.auth_failures.labels(reason="rate_limited").inc()
            return AuthResult(None, f"{peer} is rate-limited", retry_after_s=max(1.0, wait))
        user = self._identify(offered)
        if user is not None:
            return AuthResult(user)
        self.rate.failed(peer)
        reason = "wrong_token" if offered else "no_token"
        self.metrics.auth_failures.labels(reason=reason).inc()
        return AuthResult(None, f"{reason.replace('_', ' ')} from {peer}")

    def _identify(self, offered: object) -> str | None:
        if self.remote.token is not None and token_matches(self.remote.token, offered):
            return SINGLE_TOKEN_USER
        if self.store is not None:
            self._reload_tokens()
            return self.store.identify(offered)
        return None

    def _reload_tokens(self) -> bool:
        assert self.store is not None
        try:
            return self.store.reload_if_changed()
        except TokensFileError as exc:
            log.error("keeping the previous tokens: %s", exc)
            return False

    def close_revoked(self) -> int:
        """Close the connections of users no longer in the tokens file; how many."""
        if self.store is None or not self._reload_tokens():
            return 0
        allowed = self.store.users | ({SINGLE_TOKEN_USER} if self.remote.token else set())
        revoked = [c for c in self.connections if c.user is not None and c.user not in allowed]
        for connection in revoked:
            connection.close(f"the token of {connection.user} was revoked")
        return len(revoked)

    async def watch_tokens(self) -> None:
        while True:
            await asyncio.sleep(self.limits.tokens_reload_s)
            self.close_revoked()

    @contextlib.asynccontextmanager
    async def running(self, engine: Any) -> AsyncIterator[None]:
        """The background work of a listening server: tokens watcher, `/metrics`."""
        self._observe_router(engine)
        exporter = self._start_metrics(engine)
        watcher = asyncio.create_task(self.watch_tokens()) if self.store else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if exporter is not None:
                exporter.shutdown()
                exporter.server_close()

    def _observe_router(self, engine: Any) -> None:
        router = engine.router
        router.on_served.append(self._served)
        router.on_generated.append(self._generated)

    def _served(self, task: str, backend: str, fallback: bool, total_s: float | None) -> None:
        if total_s is not None:
            self.metrics.inference_seconds.labels(task=task, backend=backend).observe(total_s)
        if fallback:
            self.metrics.fallbacks.labels(task=task, backend=backend).inc()

    def _generated(self, backend: str, first_token_s: float | None, total_s: float) -> None:
        if first_token_s is not None:
            self.metrics.first_token_seconds.labels(backend=backend).observe(first_token_s)

    def _start_metrics(self, engine: Any) -> Any:
        if self.remote.metrics is None:
            return None
        from ouzel.inference.privacy import is_loopback_host

        host, port = self.remote.metrics
        authorized = None if is_loopback_host(host) else self.bearer_authorized
        router, indexes = engine.router, engine.index

        def refresh() -> None:
            self.metrics.set_backend_health(router.health_by_profile().items())
            self.metrics.set_index_phases(indexes.root_phases())

        exporter, bound = serve_metrics(self.metrics, host, port, authorized, refresh)
        self.metrics_port = bound
        log.info("metrics on http://%s:%d/metrics", host, bound)
        print(f"ouzel: metrics on http://{host}:{bound}/metrics", file=sys.stderr, flush=True)
        return exporter

    def bearer_authorized(self, header: str) -> bool:
        scheme, _, offered = header.partition(" ")
        return scheme.lower() == "bearer" and self._identify(offered.strip()) is not None

    # --- one connection ------------------------------------------------------------------

    def _attach(self, connection: Connection) -> None:
        protocol = connection.protocol
        protocol.max_concurrent_requests = self.limits.max_concurrent_requests
        if self.remote.authenticated:
            protocol.authenticate = functools.partial(self.authenticate, connection.peer)

        def joined(user: str) -> None:
            connection.user = user
            self.metrics.sessions.labels(user=user).inc()
            log.info("client %s authenticated as %s", connection.peer, user)

        def request_done(method: str, seconds: float, outcome: str) -> None:
            self.metrics.request_done(method, seconds, outcome, connection.user or "-")

        protocol.on_authenticated = joined
        protocol.on_request_done = request_done

    async def handle(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        server: Any,
        serve: ServeConnection,
    ) -> None:
        """Serve one TCP client with `serve(server, receive, writer)` under the limits."""
        peer_address = writer.get_extra_info("peername")
        peer = str(peer_address[0]) if peer_address else "?"
        connection = Connection(peer, server.ouzel_protocol, writer)
        self._attach(connection)
        self.connections.add(connection)
        log.info("client connected from %s", peer)
        if not self.remote.authenticated:
            connection.user = "local"
            self.metrics.sessions.labels(user="local").inc()
        try:
            await serve(server, self._throttled_reader(reader), self._writer(writer))
        except ConnectionLimitExceeded as exc:
            self.metrics.limit_closes.labels(reason=_reason_label(str(exc))).inc()
            connection.close(str(exc))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            log.info("client %s went away: %s", peer, exc)
        except asyncio.CancelledError:  # the server is stopping: end quietly
            log.info("closing the connection of %s: the server is stopping", peer)
        finally:
            self.connections.discard(connection)
            if connection.user is not None:
                self.metrics.sessions.labels(user=connection.user).dec()
            with contextlib.suppress(Exception):
                await writer.drain()
            writer.close()
            log.info("client %s (%s) disconnected", peer, connection.user)

    def _throttled_reader(self, reader: asyncio.StreamReader) -> Callable[[], Awaitable[Any]]:
        """`read_message_limited`, pausing when the connection is past its message rate."""
        rate = self.limits.max_messages_per_s
        bucket = MessageBucket(rate, burst=2 * rate)
        path_map = self.remote.path_map

        async def receive() -> bytes | None:
            wait = bucket.take()
            if wait > 0:
                await asyncio.sleep(wait)
            body = await read_message_limited(reader, self.limits.read)
            return path_map.incoming(body) if path_map and body is not None else body

        return receive

    def _writer(self, writer: asyncio.StreamWriter) -> Any:
        adapter = StreamWriterAdapter(writer)
        if self.remote.path_map is None:
            return adapter
        return MappedWriter(adapter, self.remote.path_map)


class MappedWriter:
    """A writer that maps server URIs back to the editor's (see server/pathmap.py)."""

    def __init__(self, inner: StreamWriterAdapter, path_map: PathMap) -> None:
        self.inner, self.path_map = inner, path_map

    def write(self, data: bytes) -> None:
        self.inner.write(self.path_map.outgoing(data))

    def close(self) -> None:
        self.inner.close()


class MessageBucket:
    """A token bucket of messages; `take()` says how long to wait before reading one."""

    def __init__(self, per_s: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.per_s, self.burst, self.clock = max(per_s, 0.001), max(burst, 1.0), clock
        self.level, self.at = self.burst, clock()

    def take(self) -> float:
        now = self.clock()
        self.level = min(self.burst, self.level + (now - self.at) * self.per_s)
        self.at = now
        self.level -= 1.0
        return 0.0 if self.level >= 0 else -self.level / self.per_s


def _reason_label(reason: str) -> str:
    for word, label in (
        ("exceeds", "message_size"),
        ("idle", "idle"),
        ("headers", "header_deadline"),
        ("body", "body_deadline"),
        ("header line", "header_line"),
    ):
        if word in reason:
            return label
    return "other"
