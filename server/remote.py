"""Remote mode: LSP over TCP with a bearer token and TLS.

LSP has no authentication of its own: whoever reaches the port gets every command. So:
- loopback without a token is allowed (the machine's own users; an SSH tunnel lands here);
- with a token, a client must send it as `initializationOptions.authToken` in `initialize`,
  or the connection is refused and closed;
- a non-loopback address needs both a token and TLS.
"""

from __future__ import annotations

import hmac
import os
import secrets
import ssl
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ouzel.inference.privacy import is_loopback_host
from ouzel.server.pathmap import PathMap
from ouzel.server.transport import ReadLimits

TOKEN_ENV = "OUZEL_TOKEN"
AUTH_FAILED = -32001  # JSON-RPC "server error" range; LSP reserves none for auth
REQUEST_FAILED = -32803  # LSP RequestFailed: used for "too many concurrent requests"
SINGLE_TOKEN_USER = "token"  # the user name of whoever holds the --token-file token


@dataclass(frozen=True)
class ConnectionLimits:
    """Per-connection limits of a TCP server: server-side flags only, never workspace files."""

    read: ReadLimits = field(default_factory=ReadLimits)
    max_concurrent_requests: int = 16
    tls_handshake_timeout_s: float = 10.0
    # Failed authentications per peer address: a token bucket of `auth_burst` failures,
    # refilled at `auth_failures_per_minute`.
    auth_burst: int = 5
    auth_failures_per_minute: float = 5.0
    tokens_reload_s: float = 1.0  # how often the tokens file's mtime is checked
    # Messages read per second from one connection (burst: twice that). Past it the server
    # stops reading that socket for a moment (TCP backpressure), so a flood costs the
    # others no more than this rate. Typing sends about 3 messages per keystroke.
    max_messages_per_s: float = 40.0


@dataclass(frozen=True)
class AuthResult:
    """What the protocol does with an `initialize`: the user, or an error to send back."""

    user: str | None
    message: str = ""
    retry_after_s: float | None = None


@dataclass(frozen=True)
class RemoteConfig:
    token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tokens_file: Path | None = None  # per-user tokens (server/tokens.py)
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    metrics: tuple[str, int] | None = None  # --metrics HOST:PORT
    path_map: PathMap | None = None  # --path-map EDITOR=SERVER (server/pathmap.py)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def authenticated(self) -> bool:
        return self.token is not None or self.tokens_file is not None


def check_listen_policy(host: str, config: RemoteConfig) -> None:
    """Raise ValueError (with the way out) when listening on `host` would be unsafe."""
    if is_loopback_host(host):
        return
    missing = [
        what
        for what, present in (
            ("a token (--token-file or --tokens-file)", config.authenticated),
            ("TLS (--tls-cert/--tls-key)", config.tls),
        )
        if not present
    ]
    if missing:
        raise ValueError(
            f"refusing to listen on {host}: a non-loopback address needs "
            + " and ".join(missing)
            + ", because LSP itself has no authentication. Or keep 127.0.0.1 and use an SSH "
            "tunnel (ssh -L PORT:127.0.0.1:PORT host)."
        )


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """The token in `path`; a new random one (file mode 0600) when the file is missing."""
    if path.exists():
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(f"{path} is readable by other users: chmod 600 {path}")
        token = path.read_text(encoding="utf-8").strip()
        if len(token) < 16:
            raise ValueError(f"the token in {path} is shorter than 16 characters")
        return token, False
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, True


def token_matches(expected: str, offered: object) -> bool:
    return isinstance(offered, str) and hmac.compare_digest(
        expected.encode("utf-8"), offered.encode("utf-8")
    )


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from exc
    return context
