"""The engine model shared by the planner's simulation and `ouzel sim`: one vLLM-like
continuous-batching scheduler whose step time comes from a benchmark row.

A step (one forward pass of the engine) costs

    overhead + max(weights, tokens × flop) + prefill_attention + decode_kv_reads

- `weights_ms`: reading the weights once per step (the memory-bound floor of a decode step);
- `flop_ms_per_token`: the dense compute of one token (2 × parameters FLOPs), so a big
  prefill chunk makes a step compute-bound;
- `attn_ms_per_token_kctx`: the attention compute of a prefill token per 1,000 tokens of
  context before it (quadratic prefill);
- `kv_ms_per_kctx`: reading 1,000 tokens of KV cache for one decoding sequence.

Scheduling follows vLLM v1 with chunked prefill: running decodes go first (one token each),
the rest of the `max_batched_tokens` budget goes to prefills in arrival order, and a new
request is admitted only when a seat (`max_num_seqs`) and KV room for prompt + max output
are free. Decodes therefore slow down while prefills share their steps (batch
interference), and queueing appears when KV or seats run out. Prefix-cache hits skip
prefill work but still occupy KV and attention context.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Literal

Provenance = Literal["measured", "published", "derived"]


@dataclass(frozen=True)
class PerfRow:
    """Step-cost coefficients for one model on one GPU type at one tensor-parallel size."""

    model: str
    gpu: str
    tp: int
    overhead_ms: float
    weights_ms: float
    flop_ms_per_token: float
    attn_ms_per_token_kctx: float
    kv_ms_per_kctx: float
    kv_tokens: int
    max_num_seqs: int = 256
    max_batched_tokens: int = 2048
    request_ms: float = 2.0  # per request outside the engine: HTTP, tokenising (adds to TTFT)
    provenance: Provenance = "derived"
    source: str = ""
    machine: str = ""
    date: str = ""

    def step_ms(
        self, prefill_tokens: int, prefill_ctx_ktokens: float, decodes: int, decode_kctx: float
    ) -> float:
        """Duration of one engine step. `prefill_ctx_ktokens` is Σ over prefill tokens of
        their context (in 1,000s of tokens); `decode_kctx` is Σ over decoding sequences of
        their context length (in 1,000s)."""
        dense = max(self.weights_ms, (prefill_tokens + decodes) * self.flop_ms_per_token)
        return (
            self.overhead_ms
            + dense
            + prefill_ctx_ktokens * self.attn_ms_per_token_kctx
            + decode_kctx * self.kv_ms_per_kctx
        )

    def with_updates(self, **changes: object) -> PerfRow:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(eq=False)
class EngineRequest:
    """One request inside the engine. Times are the engine clock's (seconds)."""

    prompt_tokens: int
    max_tokens: int
    cached_tokens: int = 0
    cls: int = 0  # request class index (ghost text, chat, agent …)
    arrival: float = 0.0
    id: int = field(default_factory=itertools.count().__next__)
    # Filled in by the scheduler.
    admitted: float | None = None
    first_token: float | None = None
    finished: float | None = None
    generated: int = 0
    prefilled: int = 0  # prompt tokens computed so far (cached ones count as computed)
    aborted: bool = False
    _finish_step: int = -1

    @property
    def kv_need(self) -> int:
        return self.prompt_tokens + self.max_tokens


@dataclass
class StepResult:
    duration_s: float
    prefill_tokens: int
    decode_tokens: int
    first_tokens: list[EngineRequest]  # prefill completed: first token at the step's end
    finished: list[EngineRequest]
    decodes_by_class: list[int]  # tokens emitted this step by decoding sequences, per class


class Scheduler:
    """vLLM-v1-like continuous batching over a PerfRow. `step()` advances one engine step;
    the caller owns the clock (virtual in the planner, real in `ouzel sim`)."""

    def __init__(self, row: PerfRow, classes: int = 3) -> None:
        self.row = row
        self.classes = classes
        self.waiting: deque[EngineRequest] = deque()
        self.prefilling: deque[EngineRequest] = deque()
        self.decoding: dict[int, EngineRequest] = {}
        self._finish_heap: list[tuple[int, int, EngineRequest]] = []
        self._decode_kctx = 0.0
        self._decodes_by_class = [0] * classes
        self.kv_used = 0
        self.step_index = 0
        self.now = 0.0

    @property
    def running(self) -> int:
        return len(self.prefilling) + len(self.decoding)

    @property
    def idle(self) -> bool:
        return not (self.waiting or self.prefilling or self.decoding)

    @property
    def kv_usage(self) -> float:
        return self.kv_used / self.row.kv_tokens if self.row.kv_tokens else 0.0

    def add(self, request: EngineRequest) -> None:
        if request.kv_need > self.row.kv_tokens:
            raise ValueError(
                f"request needs {request.kv_need} KV tokens, the engine holds {self.row.kv_tokens}"
            )
        request.cached_tokens = min(request.cached_tokens, max(0, request.prompt_tokens - 1))
        self.waiting.append(request)

    def abort(self, request: EngineRequest) -> None:
        """The client went away: free its seat and KV now."""
        if request.aborted or request.finished is not None:
            return
        request.aborted = True
        if request in self.waiting:
            self.waiting.remove(request)
            return
        if request in self.prefilling:
            self.prefilling.remove(request)
        elif request.id in self.decoding:
            request.generated = self.tokens_generated(request)
            del self.decoding[request.id]
            self._decode_kctx -= (request.prompt_tokens + request.generated) / 1000
            self._decodes_by_class[request.cls] -= 1
        self.kv_used -= request.kv_need

    def _admit(self) -> None:
        while self.waiting and self._admissible(self.waiting[0]):
            # FCFS: a head that does not fit waits for KV or a seat; the others wait behind it.
            head = self.waiting[0]
            self.waiting.popleft()
            self.kv_used += head.kv_need
            head.admitted = self.now
            head.prefilled = head.cached_tokens
            self.prefilling.append(head)

    def step(self) -> StepResult:
        """One engine step starting at `self.now`; advances `self.now` by its duration."""
        self._admit()
        row = self.row
        decodes = len(self.decoding)
        decodes_by_class = list(self._decodes_by_class)
        budget = max(0, row.max_batched_tokens - decodes)
        prefill_tokens = 0
        prefill_kctx = 0.0
        completing: list[EngineRequest] = []
        for request in self.prefilling:
            if budget <= 0:
                break
            chunk = min(budget, request.prompt_tokens - request.prefilled)
            # Σ context over the chunk's tokens: start·n + n²/2, in 1,000s of tokens.
            prefill_kctx += (request.prefilled * chunk + chunk * chunk / 2) / 1_000_000
            request.prefilled += chunk
            prefill_tokens += chunk
            budget -= chunk
            if request.prefilled >= request.prompt_tokens:
                completing.append(request)
        duration_s = row.step_ms(prefill_tokens, prefill_kctx, decodes, self._decode_kctx) / 1000
        self.now += duration_s
        self.step_index += 1
        step = self.step_index
        # Every decoding sequence emitted one token in this step.
        self._decode_kctx += decodes / 1000
        finished: list[EngineRequest] = []
        heap = self._finish_heap
        while heap and heap[0][0] <= step:
            _, _, request = heapq.heappop(heap)
            if request.aborted or self.decoding.pop(request.id, None) is None:
                continue
            self._finish(request, finished)
        for request in completing:
            self.prefilling.remove(request)
            request.first_token = self.now
            request.generated = 1
            if request.max_tokens <= 1:
                self._finish(request, finished, decoding=False)
                continue
            # It decodes from the next step on, one token per step.
            request._finish_step = step + request.max_tokens - 1
            heapq.heappush(heap, (request._finish_step, request.id, request))
            self.decoding[request.id] = request
            self._decode_kctx += (request.prompt_tokens + 1) / 1000
            self._decodes_by_class[request.cls] += 1
        return StepResult(
            duration_s, prefill_tokens, decodes, completing, finished, decodes_by_class
        )

    def fast_forward(self, until: float) -> tuple[int, float]:
        """Run, in one go, the decode-only steps during which nothing can change the
        batch: no prefill, nobody admissible, none finishing, each starting before
        `until` (the next arrival). Returns (steps, seconds). The planner's DES uses it;
        a step's KV reads grow by one token per sequence, summed in closed form."""
        if self.prefilling or not self.decoding:
            return 0, 0.0
        if self.waiting and self._admissible(self.waiting[0]):
            return 0, 0.0
        row = self.row
        decodes = len(self.decoding)
        max_steps = self._finish_heap[0][0] - self.step_index - 1  # the finishing step is step()'s
        budget = (until - self.now) * 1000
        if max_steps <= 0 or budget <= 0:
            return 0, 0.0
        base = row.overhead_ms + max(row.weights_ms, decodes * row.flop_ms_per_token)
        first = base + self._decode_kctx * row.kv_ms_per_kctx  # ms, the next step
        growth = decodes / 1000 * row.kv_ms_per_kctx  # ms added per step
        # Steps i = 0, 1, … start at Σ_{j<i} (first + j·growth); count those before `until`.
        if math.isinf(budget):
            steps = max_steps
        elif growth > 0:
            a, b = growth / 2, first - growth / 2
            steps = math.ceil((-b + math.sqrt(b * b + 4 * a * budget)) / (2 * a))
        else:
            steps = math.ceil(budget / first)
        steps = max(0, min(max_steps, steps))
        total_ms = steps * first + growth * steps * (steps - 1) / 2
        self.now += total_ms / 1000
        self.step_index += steps
        self._decode_kctx += steps * decodes / 1000
        return steps, total_ms / 1000

    def _admissible(self, request: EngineRequest) -> bool:
        return (
            self.running < self.row.max_num_seqs
            and self.kv_used + request.kv_need <= self.row.kv_tokens
        )

    def _finish(
        self, request: EngineRequest, finished: list[EngineRequest], decoding: bool = True
    ) -> None:
        request.generated = request.max_tokens
        request.finished = self.now
        if decoding:
            self._decode_kctx -= (request.prompt_tokens + request.max_tokens) / 1000
            self._decodes_by_class[request.cls] -= 1
        self.kv_used -= request.kv_need
        finished.append(request)

    def decodes_by_class(self) -> list[int]:
        return list(self._decodes_by_class)

    def tokens_generated(self, request: EngineRequest) -> int:
        """Tokens a decoding request has produced so far (for streaming in `ouzel sim`)."""
        if request.finished is not None:
            return request.generated
        if request.first_token is None:
            return 0
        return request.max_tokens - (request._finish_step - self.step_index)
