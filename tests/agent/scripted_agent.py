"""Drive the real agent loop and OpenAI backend with a scripted model: each model call
answers the next planned list of tool calls, then a final text."""

from __future__ import annotations

import json
from typing import Any

from scripted_openai_server import (
    Reply,
    ScriptedServer,
    Seen,
    chat_text_events,
    models_reply,
    tool_calls_events,
)

from ouzel.inference.openai_compat import Endpoint, OpenAICompatBackend
from ouzel.server.agent.loop import AgentLoop, AgentResult
from ouzel.server.agent.tools import AgentContext

Step = list[tuple[str, dict[str, Any]]]


class Plan:
    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.calls = 0

    def script(self, seen: Seen) -> Reply:
        if seen.path.endswith("/models"):
            return models_reply("scripted")
        if not self.steps:
            return Reply(events=chat_text_events(["Done."]))
        step = self.steps.pop(0)
        self.calls += 1
        calls = [
            (f"call_{self.calls}_{i}", name, json.dumps(args))
            for i, (name, args) in enumerate(step)
        ]
        return Reply(events=tool_calls_events(calls))


async def run_plan(
    server: ScriptedServer, plan: Plan, ctx: AgentContext, steps: list[Step]
) -> AgentResult:
    plan.steps = list(steps)
    backend = OpenAICompatBackend("scripted", Endpoint(base_url=server.base_url, model="scripted"))
    try:
        return await AgentLoop(backend, ctx).run("Please do the task.")
    finally:
        await backend.aclose()


def tool_records(result: AgentResult) -> list[dict[str, Any]]:
    return [record for record in result.transcript if record["kind"] == "tool"]


def sent_text(server: ScriptedServer) -> str:
    """What the agent's tools sent to the model (the model's own arguments left out)."""
    return "\n".join(
        message.get("content") or ""
        for seen in server.seen
        if isinstance(seen.body, dict)
        for message in seen.body.get("messages", [])
        if message.get("role") in ("tool", "user")
    )
