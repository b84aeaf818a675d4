"""The privacy guard: loopback detection, the allow_remote gate, and secret redaction."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ouzel.inference.privacy import (
    RemoteNotAllowed,
    check_endpoint,
    is_loopback_host,
    is_remote,
    redact,
    redact_messages,
)
from ouzel.inference.types import ChatMessage, ToolCall

# Realistic-looking but fake secrets, assembled at run time so this file holds none.
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
GCP_KEY = "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
GITHUB = "ghp_" + "a" * 20 + "B" * 16
GITHUB_PAT = "github_pat_" + "11ABCDEFG0" * 8
OPENAI = "sk-proj-" + "Ab3dE6gH9jK2mN5pQ8sT" * 2
SLACK = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
AZURE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBtb3JlIGJ5dGVzIG9mIGEgZmFrZSBrZXkgZm9yIHRlc3Rz\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("gpu.localhost", True),
        ("10.0.0.5", False),
        ("192.168.1.20", False),
        ("gpu-box", False),
        ("localhost.evil.com", False),
        ("0.0.0.0", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_remote_follows_url_unless_the_profile_says_otherwise() -> None:
    assert not is_remote("http://127.0.0.1:8000/v1")
    assert is_remote("https://gpu.example.com/v1")
    assert not is_remote(None)  # in process
    # An SSH tunnel looks like loopback but the data ends up on another machine.
    assert is_remote("http://127.0.0.1:8000/v1", "remote")
    # `local` is a claim only the URL can prove: a settings file cannot make a host local.
    assert is_remote("https://gpu.lan/v1", "local")
    assert is_remote("https://attacker.example/v1", "local")
    assert is_remote("http://10.0.0.5:8000/v1", "local")
    assert not is_remote("http://127.0.0.2:8000/v1", "local")
    assert not is_remote("http://[::1]:8000/v1", "local")
    assert not is_remote("http://localhost:8000/v1", "local")
    assert not is_remote("unix:///run/llama.sock", "local")
    assert not is_remote("http+unix://%2Frun%2Fllama.sock/v1", "auto")
    assert is_remote("unix-not:///x", "local")


def test_remote_endpoint_needs_allow_remote() -> None:
    check_endpoint("local-server", "http://localhost:8080/v1", "auto", allow_remote=False)
    check_endpoint("gpu", "https://gpu.example.com/v1", "auto", allow_remote=True)
    with pytest.raises(RemoteNotAllowed, match=r"privacy\.allow_remote") as info:
        check_endpoint("gpu", "https://gpu.example.com/v1", "auto", allow_remote=False)
    assert "gpu.example.com" in str(info.value) and "'gpu'" in str(info.value)
    with pytest.raises(RemoteNotAllowed):
        check_endpoint("tunnel", "http://127.0.0.1:9000/v1", "remote", allow_remote=False)


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        (f"key_id = {AWS_ID}\n", AWS_ID, "aws-access-key-id"),
        (f"aws_secret_access_key = {AWS_SECRET}\n", AWS_SECRET, "aws-secret-access-key"),
        (f'const key = "{GCP_KEY}";', GCP_KEY, "gcp-api-key"),
        (f"token: {GITHUB}", GITHUB, "github-token"),
        (f"GH={GITHUB_PAT}", GITHUB_PAT, "github-token"),
        (f"client = OpenAI(api_key={OPENAI!r})", OPENAI, "openai-key"),
        (f"SLACK={SLACK}", SLACK, "slack-token"),
        (f"Authorization: Bearer {JWT}", JWT, "jwt"),
        (
            f"DefaultEndpointsProtocol=https;AccountName=x;AccountKey={AZURE_KEY};",
            AZURE_KEY,
            "azure-storage-key",
        ),
        (f"key = '''\n{PEM}\n'''", PEM, "private-key"),
        ('password = "correct horse battery"', "correct horse battery", "password-assignment"),
        ('{"apiKey": "a1b2c3d4e5"}', "a1b2c3d4e5", "password-assignment"),
        ("DB_PASSWORD=hunter2hunter2\n", "hunter2hunter2", "password-assignment"),
        ("export API_TOKEN=abcd1234efgh\n", "abcd1234efgh", "password-assignment"),
        ("postgres://app:s3cr3tpw@db:5432/app", "s3cr3tpw", "url-password"),
    ],
)
def test_secrets_are_redacted(text: str, secret: str, kind: str) -> None:
    result = redact(text)
    assert secret not in result.text
    assert f"[REDACTED:{kind}]" in result.text
    assert kind in result.kinds


def test_private_key_inside_json_with_escaped_newlines() -> None:
    escaped = PEM.replace("\n", "\\n")
    text = '{"type": "service_account", "private_key": "' + escaped + '\\n", "x": 1}'
    result = redact(text)
    assert "b3BlbnNzaC1rZXkt" not in result.text
    assert result.text.endswith('\\n", "x": 1}')


def test_truncated_private_key_is_redacted_to_the_end() -> None:
    head = PEM.split("-----END")[0]
    result = redact("before\n" + head)
    assert result.text == "before\n[REDACTED:private-key]"


def test_code_stays_readable() -> None:
    code = (
        "def login(user, password):\n"
        "    token = make_token(user)\n"
        "    password = getpass()\n"
        '    if password == "":\n'
        "        raise ValueError('empty')\n"
        "    return token\n"
    )
    result = redact(code)
    assert result.text == code
    assert result.count == 0


def test_only_the_literal_goes_from_an_assignment() -> None:
    result = redact('settings.password = "p4ssw0rd!"  # from the vault')
    assert result.text == 'settings.password = "[REDACTED:password-assignment]"  # from the vault'


def test_emoji_and_cjk_around_secrets() -> None:
    text = f"🔑 键: {GITHUB} 🎉\r\n"
    result = redact(text)
    assert result.text == "🔑 键: [REDACTED:github-token] 🎉\r\n"


def test_messages_and_tool_call_arguments_are_redacted() -> None:
    messages = [
        ChatMessage("user", f"why does {AWS_ID} fail?"),
        ChatMessage(
            "assistant",
            "",
            tool_calls=(ToolCall("c1", "write_file", f'{{"text": "TOKEN={OPENAI}"}}'),),
        ),
    ]
    cleaned, kinds = redact_messages(messages)
    assert AWS_ID not in cleaned[0].content
    assert OPENAI not in cleaned[1].tool_calls[0].arguments
    assert kinds == ("aws-access-key-id", "openai-key")
    assert messages[0].content.endswith("fail?") and AWS_ID in messages[0].content


@given(st.text(max_size=300))
def test_redaction_is_idempotent(text: str) -> None:
    once = redact(text).text
    assert redact(once).text == once


@given(st.from_regex(r"[a-z_ ()=+\-*/.,:\n]{0,200}", fullmatch=True))
def test_plain_code_shapes_are_untouched(text: str) -> None:
    assert redact(text).text == text
