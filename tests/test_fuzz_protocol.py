"""Fuzz the in-process server with random JSON-RPC: every request gets exactly one answer.

Inspired by LSPFuzz: messages are well-framed but their methods and params are random
(known LSP methods with mangled params, unknown methods, wrong types).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ouzel.server.app import build_engine
from ouzel.server.server import create_server, routes

METHODS = sorted({route.method for route in routes()} - {"initialize", "shutdown", "exit"}) + [
    "textDocument/hover",
    "no/such/method",
    "$/cancelRequest",
    "$/setTrace",
]

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_value = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)

position = st.fixed_dictionaries(
    {"line": st.integers(-3, 10**6), "character": st.integers(-3, 10**6)}
)
doc_id = st.fixed_dictionaries(
    {"uri": st.sampled_from(["file:///ws/a.py", "file:///ws/b.py", "untitled:x", "bad uri"])}
)
plausible_params = st.fixed_dictionaries(
    {},
    optional={
        "textDocument": doc_id
        | st.fixed_dictionaries(
            {
                "uri": st.just("file:///ws/a.py"),
                "languageId": st.just("python"),
                "version": st.integers(-1, 10),
                "text": st.text(max_size=60),
            }
        ),
        "position": position,
        "context": st.fixed_dictionaries({"triggerKind": st.integers(0, 3)}),
        "contentChanges": st.lists(
            st.fixed_dictionaries(
                {"text": st.text(max_size=20)},
                optional={"range": st.fixed_dictionaries({"start": position, "end": position})},
            ),
            max_size=3,
        ),
        "query": st.text(max_size=10),
        "id": st.integers(0, 50) | st.text(max_size=3),
    },
)

message = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0"),
        "method": st.sampled_from(METHODS),
        "params": plausible_params | json_value,
    },
    optional={"id": st.integers(1, 10**9)},
)


class Capture:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        body = data.split(b"\r\n\r\n", 1)[1]
        self.messages.append(json.loads(body))

    def close(self) -> None:
        pass


async def _run(batch: list[dict[str, Any]]) -> Capture:
    server = create_server(build_engine())
    server.session.bind_loop(asyncio.get_running_loop())
    capture = Capture()
    protocol = server.ouzel_protocol
    protocol.set_writer(capture)
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"capabilities": {}, "rootUri": None},
    }
    protocol.handle_body(json.dumps(init).encode())
    protocol.handle_body(
        json.dumps({"jsonrpc": "2.0", "method": "initialized", "params": {}}).encode()
    )
    for item in batch:
        protocol.handle_body(json.dumps(item).encode())
        await asyncio.sleep(0)
    for _ in range(200):  # let async handlers finish
        await asyncio.sleep(0.005)
        answered = {m.get("id") for m in capture.messages if "method" not in m}
        if all(item["id"] in answered for item in batch if "id" in item):
            break
    server.session.cancel_background()
    return capture


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(message, min_size=1, max_size=8, unique_by=lambda m: m.get("id", id(m))))
def test_every_request_gets_exactly_one_answer(batch: list[dict[str, Any]]) -> None:
    capture = asyncio.run(_run(batch))
    # id null answers a message too broken to have an id (JSON-RPC says so)
    responses = [m for m in capture.messages if "method" not in m and m.get("id") not in (0, None)]
    ids = [m["id"] for m in responses]
    expected = sorted(item["id"] for item in batch if "id" in item)
    assert sorted(ids) == expected, (batch, capture.messages)
    for response in responses:
        assert ("result" in response) != ("error" in response)
        if "error" in response:
            assert response["error"]["code"] != -32603 or "Traceback" not in json.dumps(response)
