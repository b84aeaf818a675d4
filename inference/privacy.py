"""The privacy guard: where prompts may go, and what is taken out of them on the way.

Two rules, applied by the router before any byte leaves the process:

1. A remote endpoint (not loopback, or a profile marked `location = "remote"`, e.g. an SSH
   tunnel) is used only when `privacy.allow_remote` is on.
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
    would make the answer depend on DNS, which is exactly what an attacker can change."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_remote(base_url: str | None, location: Location = "auto") -> bool:
    """Whether a profile sends data off this machine."""
    if location != "auto":
        return location == "remote"
    if base_url is None:  # in process
        return False
    return not is_loopback_host(host_of(base_url))


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

# (kind, pattern, group to replace: 0 = the whole match). Ordered: the first pattern that
# covers a span wins, so the specific token shapes come before the generic assignments.
_PATTERNS: list[tuple[str, re.Pattern[str], int]] = [
    (
        "private-key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)"
        ),
        0,
    ),
    ("aws-access-key-id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[0-9A-Z]{16}\b"), 0),
    (
        "aws-secret-access-key",
        re.compile(
            r"(?i)(aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?)([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        2,
    ),
    ("gcp-api-key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])"), 0),
    ("gcp-oauth-token", re.compile(r"\bya29\.[0-9A-Za-z_\-]{20,}"), 0),
    (
        "azure-storage-key",
        re.compile(r"(?i)((?:AccountKey|SharedAccessKey)\s*=\s*)([A-Za-z0-9+/]{40,}={0,2})"),
        2,
    ),
    ("azure-sas-signature", re.compile(r"(?i)([?&]sig=)([A-Za-z0-9%+/=]{30,})"), 2),
    ("github-token", re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}\b"), 0),
    ("github-token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{60,255}\b"), 0),
    ("openai-key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_\-]{20,}"), 0),
    ("slack-token", re.compile(r"\bxox[abposre]-[A-Za-z0-9\-]{10,}"), 0),
    (
        "slack-webhook",
        re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9_/]{20,}"),
        0,
    ),
    ("stripe-key", re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"), 0),
    ("huggingface-token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), 0),
    ("npm-token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"), 0),
    (
        "jwt",
        re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
        0,
    ),
    ("bearer-token", re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/\-]{20,}=*)"), 2),
    ("url-password", re.compile(r"([a-z][a-z0-9+.\-]*://[^\s:/@]+:)([^\s@/]{3,})(@)"), 2),
    # `password = "hunter2"`, `"apiKey": "…"`, `secret: '…'`: a quoted literal assigned to a
    # secret-sounding name. Only the literal goes; the code around it stays readable.
    (
        "password-assignment",
        re.compile(
            r"(?i)(\b[\w.\-]*(?:passw(?:or)?d|passwd|pwd|secret|api[_\-]?key|access[_\-]?key|"
            r"auth[_\-]?token|access[_\-]?token|private[_\-]?key|client[_\-]?secret|credentials?)"
            r"[\w.\-]*[\"']?\s*(?::=|=>|[:=])\s*[bru]?)([\"'])((?:(?!\2)[^\\\n]|\\.){4,})\2"
        ),
        3,
    ),
    # `.env` and shell style: `DB_PASSWORD=hunter2`, `export API_TOKEN=abc…`.
    (
        "password-assignment",
        re.compile(
            r"(?m)^(\s*(?:export\s+)?[A-Z0-9_]*(?:PASSWORD|PASSWD|PWD|SECRET|TOKEN|API_?KEY|"
            r"ACCESS_?KEY|CREDENTIALS?)[A-Z0-9_]*\s*=\s*)([^\s\"'#$]{4,})"
        ),
        2,
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
    for kind, pattern, group in _PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span(group)
            if start == end or _overlaps(spans, start, end):
                continue
            if _already_redacted(text, start, end):
                continue
            spans.append((start, end, kind))
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
