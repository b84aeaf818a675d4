"""The privacy guard: where prompts may go, and what is taken out of them on the way.

Two rules, applied by the router before any byte leaves the process:

1. A remote endpoint (not loopback nor a unix socket, whatever `location` says; or a
   profile marked `location = "remote"`, e.g. an SSH tunnel) is used only when
   `privacy.allow_remote` is on.
2. Prompts for remote endpoints have secret-looking strings replaced by `[REDACTED:kind]`
   (private keys, cloud and SaaS tokens, JWTs, password assignments), unless
   `privacy.redact_secrets` is off.

Secret detection is a table of regular expressions rather than a scanner library: the
scanners we looked at (detect-secrets) work line by line and flag only the first line of a
PEM block, which is useless for redacting the key body.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import urlsplit

from ouzel.inference.types import BackendUnavailable, ChatMessage

Location = Literal["auto", "local", "remote"]


class RemoteNotAllowed(BackendUnavailable):
    """The endpoint is remote and the settings do not allow sending code there."""


def host_of(url: str) -> str:
    """The host part of `url` ("" when there is none)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost. Other names count as remote: resolving them
    would make the answer depend on DNS, which is exactly what an attacker can change.

    The one loopback test of the code base (the server's TCP listener uses it too)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


UNIX_SOCKET_SCHEMES = ("unix", "http+unix", "https+unix")


def is_unix_socket_url(url: str) -> bool:
    scheme, _, _ = url.partition("://")
    return scheme.lower() in UNIX_SOCKET_SCHEMES


def is_remote(base_url: str | None, location: Location = "auto") -> bool:
    """Whether a profile sends data off this machine.

    `location = "remote"` is always believed (an SSH tunnel looks like loopback).
    `location = "local"` is not: only the URL can prove an endpoint is on this machine, so a
    non-loopback URL is remote whatever a settings file claims.
    """
    if location == "remote":
        return True
    if base_url is None:  # in process
        return False
    return not (is_unix_socket_url(base_url) or is_loopback_host(host_of(base_url)))


def check_endpoint(
    profile_name: str, base_url: str, location: Location, allow_remote: bool
) -> None:
    """Raise RemoteNotAllowed when `base_url` may not receive code."""
    if allow_remote or not is_remote(base_url, location):
        return
    raise RemoteNotAllowed(
        f"profile '{profile_name}' points at a remote server ({host_of(base_url) or base_url}); "
        "ouzel sends code off this machine only when `privacy.allow_remote` is true "
        "(set it in your user config, not in a repository's .ouzel/config.toml)"
    )


# --- secret redaction -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    kind: str
    pattern: re.Pattern[str]
    group: int  # the group to replace; 0 = the whole match
    # Lower-case strings of which at least one occurs in any match: a rule whose hints are
    # all absent is not run (a substring test is far cheaper than a regex scan).
    hints: tuple[str, ...]


def _rule(kind: str, pattern: str, group: int, *hints: str) -> _Rule:
    return _Rule(kind, re.compile(pattern), group, hints)


_SECRET_WORDS = ("pass", "pwd", "secret", "key", "token", "credential")

# Ordered: the first rule that covers a span wins, so the specific token shapes come
# before the generic assignments.
_RULES: list[_Rule] = [
    _rule(
        "private-key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        0,
        "private key",
    ),
    _rule(
        "aws-access-key-id",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[0-9A-Z]{16}\b",
        0,
        "akia",
        "asia",
        "abia",
        "acca",
        "aida",
        "aroa",
    ),
    _rule(
        "aws-secret-access-key",
        r"(?i)(aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?)([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        2,
        "secret",
    ),
    _rule("gcp-api-key", r"\bAIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])", 0, "aiza"),
    _rule("gcp-oauth-token", r"\bya29\.[0-9A-Za-z_\-]{20,}", 0, "ya29."),
    _rule(
        "azure-storage-key",
        r"(?i)((?:AccountKey|SharedAccessKey)\s*=\s*)([A-Za-z0-9+/]{40,}={0,2})",
        2,
        "accountkey",
        "sharedaccesskey",
    ),
    _rule("azure-sas-signature", r"(?i)([?&]sig=)([A-Za-z0-9%+/=]{30,})", 2, "sig="),
    _rule(
        "github-token",
        r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}\b",
        0,
        "ghp_",
        "gho_",
        "ghu_",
        "ghs_",
        "ghr_",
    ),
    _rule("github-token", r"\bgithub_pat_[A-Za-z0-9_]{60,255}\b", 0, "github_pat_"),
    _rule("openai-key", r"\bsk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_\-]{20,}", 0, "sk-"),
    _rule("slack-token", r"\bxox[abposre]-[A-Za-z0-9\-]{10,}", 0, "xox"),
    _rule(
        "slack-webhook", r"https://hooks\.slack\.com/services/[A-Za-z0-9_/]{20,}", 0, "hooks.slack"
    ),
    _rule("stripe-key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}", 0, "_live_", "_test_"),
    _rule("huggingface-token", r"\bhf_[A-Za-z0-9]{30,}\b", 0, "hf_"),
    _rule("npm-token", r"\bnpm_[A-Za-z0-9]{36}\b", 0, "npm_"),
    _rule("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", 0, "eyj"),
    _rule("bearer-token", r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/\-]{20,}=*)", 2, "bearer"),
    _rule("url-password", r"([a-z][a-z0-9+.\-]*://[^\s:/@]+:)([^\s@/]{3,})(@)", 2, "://"),
    # `password = "hunter2"`, `"apiKey": "…"`, `secret: '…'`: a quoted literal assigned to a
    # secret-sounding name. Only the literal goes; the code around it stays readable. The
    # pattern starts at the secret word (not at the start of the identifier) so a scan
    # does not try every word of the text.
    _rule(
        "password-assignment",
        r"(?i)((?:passw(?:or)?d|passwd|pwd|secret|api[_\-]?key|access[_\-]?key|"
        r"auth[_\-]?token|access[_\-]?token|private[_\-]?key|client[_\-]?secret|credentials?)"
        r"[\w.\-]*[\"']?\s*(?::=|=>|[:=])\s*[bru]?)([\"'])((?:(?!\2)[^\\\n]|\\.){4,})\2",
        3,
        *_SECRET_WORDS,
    ),
    # `.env` and shell style: `DB_PASSWORD=hunter2`, `export API_TOKEN=abc…`.
    _rule(
        "password-assignment",
        r"(?m)^(\s*(?:export\s+)?[A-Z0-9_]*(?:PASSWORD|PASSWD|PWD|SECRET|TOKEN|API_?KEY|"
        r"ACCESS_?KEY|CREDENTIALS?)[A-Z0-9_]*\s*=\s*)([^\s\"'#$]{4,})",
        2,
        *_SECRET_WORDS,
    ),
]

REDACTED = "[REDACTED:{kind}]"


@dataclass(frozen=True)
class Redaction:
    text: str
    kinds: tuple[str, ...]  # one entry per redacted span, in text order

    @property
    def count(self) -> int:
        return len(self.kinds)


def redact(text: str) -> Redaction:
    """`text` with every secret-looking span replaced by `[REDACTED:kind]`."""
    spans: list[tuple[int, int, str]] = []
    lowered = text.lower()
    for rule in _RULES:
        if not any(hint in lowered for hint in rule.hints):
            continue
        for match in rule.pattern.finditer(text):
            start, end = match.span(rule.group)
            if start == end or _overlaps(spans, start, end):
                continue
            if _already_redacted(text, start, end):
                continue
            spans.append((start, end, rule.kind))
    if not spans:
        return Redaction(text, ())
    spans.sort()
    pieces: list[str] = []
    last = 0
    for start, end, kind in spans:
        pieces.append(text[last:start])
        pieces.append(REDACTED.format(kind=kind))
        last = end
    pieces.append(text[last:])
    return Redaction("".join(pieces), tuple(kind for _, _, kind in spans))


def _overlaps(spans: Sequence[tuple[int, int, str]], start: int, end: int) -> bool:
    return any(start < other_end and other_start < end for other_start, other_end, _ in spans)


def _already_redacted(text: str, start: int, end: int) -> bool:
    return text[start:end].startswith("[REDACTED:")


def redact_messages(messages: Sequence[ChatMessage]) -> tuple[list[ChatMessage], tuple[str, ...]]:
    """Redact the content of every message (tool call arguments too)."""
    kinds: list[str] = []
    cleaned: list[ChatMessage] = []
    for message in messages:
        result = redact(message.content)
        kinds += result.kinds
        calls = []
        for call in message.tool_calls:
            arguments = redact(call.arguments)
            kinds += arguments.kinds
            calls.append(replace(call, arguments=arguments.text))
        cleaned.append(replace(message, content=result.text, tool_calls=tuple(calls)))
    return cleaned, tuple(kinds)
