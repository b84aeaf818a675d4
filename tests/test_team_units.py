"""Unit tests of the team server's pieces: rate limiter, tokens store, limited reader, /metrics."""

from __future__ import annotations

import asyncio
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ouzel.server import tokens
from ouzel.server.metrics import LATENCY_BUCKETS, ServerMetrics, serve_metrics
from ouzel.server.team import AuthRateLimiter
from ouzel.server.transport import ConnectionLimitExceeded, ReadLimits, read_message_limited


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_is_a_token_bucket_per_peer() -> None:
    clock = FakeClock()
    limiter = AuthRateLimiter(burst=3, per_minute=6, clock=clock)  # one refill per 10 s
    for _ in range(3):
        assert limiter.retry_after("10.0.0.1") == 0
        limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == pytest.approx(10.0)
    assert limiter.retry_after("10.0.0.2") == 0, "another peer is not affected"
    clock.now += 5
    assert limiter.retry_after("10.0.0.1") == pytest.approx(5.0)
    clock.now += 5
    assert limiter.retry_after("10.0.0.1") == 0


def test_token_store_reloads_on_change_and_keeps_the_last_good_set(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    alice = tokens.add_token(path, "alice")
    store = tokens.TokenStore(path)
    assert store.identify(alice) == "alice"
    assert store.identify("nope") is None and store.identify(None) is None
    bob = tokens.add_token(path, "bob")
    assert store.reload_if_changed() and store.identify(bob) == "bob"
    assert not store.reload_if_changed(), "unchanged file: no re-read"
    path.write_text("{not json")
    os.utime(path, ns=(1, 1))
    with pytest.raises(tokens.TokensFileError, match="cannot read"):
        store.reload_if_changed()
    assert store.users == {"alice", "bob"}
    path.write_text('{"tokens": {"eve": {"sha256": "short"}}}')
    with pytest.raises(tokens.TokensFileError, match="no valid sha256"):
        tokens.read_tokens_file(path)


async def _read(data: bytes, limits: ReadLimits, eof: bool = True) -> bytes | None:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return await read_message_limited(reader, limits)


async def test_limited_reader_refuses_big_messages_before_the_body() -> None:
    limits = ReadLimits(max_message_bytes=100, header_timeout_s=0.5, idle_timeout_s=0.5)
    assert await _read(b"Content-Length: 2\r\n\r\n{}", limits) == b"{}"
    with pytest.raises(ConnectionLimitExceeded, match="101 bytes exceeds the limit of 100"):
        await _read(b"Content-Length: 101\r\n\r\n", limits, eof=False)
    with pytest.raises(ConnectionLimitExceeded, match="exceeds"):
        await _read(b"Content-Length: 99999999999999999999\r\n\r\n", limits, eof=False)
    # A bad header is skipped and the next message is read.
    assert await _read(b"Content-Length: x\r\n\r\nContent-Length: 1\r\n\r\n1", limits) == b"1"
    with pytest.raises(ConnectionLimitExceeded, match="headers not complete"):
        await _read(b"Content-Length: 5\r\n", limits, eof=False)
    with pytest.raises(ConnectionLimitExceeded, match="idle"):
        await _read(b"", limits, eof=False)
    with pytest.raises(ConnectionLimitExceeded, match="more than 16 headers"):
        await _read(b"X: 1\r\n" * 20, limits, eof=False)
    assert await _read(b"Content-Length: 10\r\n\r\n{}", limits) is None  # cut short


def test_metrics_endpoint_requires_the_bearer_token_when_asked() -> None:
    metrics = ServerMetrics()
    metrics.request_done("textDocument/inlineCompletion", 0.03, "ok", "alice")
    metrics.request_done("textDocument/inlineCompletion", 0.0, "cancelled", "alice")
    httpd, port = serve_metrics(
        metrics, "127.0.0.1", 0, authorized=lambda header: header == "Bearer right"
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 401
        request = urllib.request.Request(url, headers={"Authorization": "Bearer right"})
        with urllib.request.urlopen(request, timeout=10) as response:
            families = {
                f.name: f.samples for f in text_string_to_metric_families(response.read().decode())
            }
    finally:
        httpd.shutdown()
        httpd.server_close()
    counts = [s for s in families["ouzel_request_duration_seconds"] if s.name.endswith("_count")]
    assert counts[0].value == 1.0
    cancelled = families["ouzel_cancellations"]
    assert any(s.value == 1.0 for s in cancelled if s.name.endswith("_total"))
    assert LATENCY_BUCKETS[:8] == (0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2)
    assert 1.0 in LATENCY_BUCKETS and LATENCY_BUCKETS[8] - LATENCY_BUCKETS[7] == pytest.approx(0.05)


def test_message_bucket_paces_a_flood_and_lets_typing_through() -> None:
    from ouzel.server.team import MessageBucket

    clock = FakeClock()
    bucket = MessageBucket(per_s=10, burst=20, clock=clock)
    assert all(bucket.take() == 0 for _ in range(20)), "a burst of 20 passes at once"
    assert bucket.take() == pytest.approx(0.1)
    clock.now += 10
    assert bucket.take() == 0, "after a pause the bucket is full again"


def test_path_map_rewrites_only_uri_fields_on_folder_boundaries() -> None:
    from ouzel.server.pathmap import PathMap, PathMapError

    paths = PathMap.parse(["/home/me/proj=/srv/proj"])
    message = {
        "params": {
            "rootPath": "/home/me/proj",
            "rootUri": "file:///home/me/proj",
            "textDocument": {"uri": "file:///home/me/proj/a.py", "text": "file:///home/me/proj"},
            "other": {"uri": "file:///home/me/project/b.py"},
        }
    }
    mapped = paths.rewrite(message, to_server=True)["params"]
    assert mapped["rootPath"] == "/srv/proj" and mapped["rootUri"] == "file:///srv/proj"
    assert mapped["textDocument"] == {
        "uri": "file:///srv/proj/a.py",
        "text": "file:///home/me/proj",
    }
    assert mapped["other"]["uri"] == "file:///home/me/project/b.py", "not a prefix of /project"
    edit = {"result": {"changes": {"file:///srv/proj/a.py": [{"newText": "x"}]}}}
    assert paths.rewrite(edit, to_server=False)["result"]["changes"] == {
        "file:///home/me/proj/a.py": [{"newText": "x"}]
    }
    framed = b'Content-Length: 40\r\n\r\n{"result": {"uri": "file:///srv/proj/a"}}'
    header, _, body = paths.outgoing(framed).partition(b"\r\n\r\n")
    assert header == b"Content-Length: %d" % len(body) and b"/home/me/proj/a" in body
    assert paths.incoming(b"{not json") == b"{not json"
    for bad in (["nosep"], ["a=/b"], ["/a="]):
        with pytest.raises(PathMapError):
            PathMap.parse(bad)
