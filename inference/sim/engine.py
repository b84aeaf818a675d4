"""The live engine of `ouzel sim`: the planner's `Scheduler` on the real clock, a block
prefix cache, and vLLM's Prometheus metrics."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ouzel.inference.planner.perf import EngineRequest, PerfRow, Scheduler

BLOCK_TOKENS = 16  # vLLM's default KV block size
_PIECE = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")

# Bucket lists as in vLLM's vllm/v1/metrics/loggers.py.
TTFT_BUCKETS = [
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
]
TPOT_BUCKETS = [
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
]
REQUEST_LATENCY_BUCKETS = [
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
]
ITERATION_TOKEN_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]


def build_1_2_5_buckets(max_value: int) -> list[float]:
    buckets: list[float] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_value:
                return buckets
            buckets.append(float(value))
        exponent += 1


def tokenize(text: str) -> list[str]:
    """A stand-in tokenizer: words, punctuation and whitespace runs (≈ BPE counts for code)."""
    return _PIECE.findall(text)


class PrefixCache:
    """Hashes of full KV blocks, each chained to its predecessors (as vLLM does), kept LRU
    up to the engine's KV capacity."""

    def __init__(self, capacity_blocks: int) -> None:
        self.capacity = max(1, capacity_blocks)
        self.blocks: OrderedDict[bytes, None] = OrderedDict()

    def lookup_and_insert(self, pieces: list[str]) -> int:
        """Cached leading tokens of `pieces`; then remember all of its full blocks."""
        digest = b""
        hit_blocks = 0
        missed = False
        for start in range(0, len(pieces) - BLOCK_TOKENS + 1, BLOCK_TOKENS):
            digest = hashlib.blake2b(
                digest + "".join(pieces[start : start + BLOCK_TOKENS]).encode(), digest_size=16
            ).digest()
            if not missed and digest in self.blocks:
                hit_blocks += 1
                self.blocks.move_to_end(digest)
            else:
                missed = True
                self.blocks[digest] = None
                if len(self.blocks) > self.capacity:
                    self.blocks.popitem(last=False)
        return hit_blocks * BLOCK_TOKENS


class Metrics:
    """vLLM's metric names, labels (`model_name`, `engine`) and buckets."""

    def __init__(self, model: str, max_model_len: int) -> None:
        self.registry = CollectorRegistry()
        labels = ["model_name", "engine"]
        values = (model, "0")
        r = self.registry

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, labels, registry=r)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, labels, registry=r)

        def histogram(name: str, doc: str, buckets: list[float]) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=r)

        self.running = gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches."
        ).labels(*values)
        self.waiting = gauge(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed."
        ).labels(*values)
        self.kv_usage = gauge(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."
        ).labels(*values)
        self.prefix_queries = counter(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
        ).labels(*values)
        self.prefix_hits = counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."
        ).labels(*values)
        self.preemptions = counter(
            "vllm:num_preemptions", "Cumulative number of preemption from the engine."
        ).labels(*values)
        self.prompt_tokens = counter(
            "vllm:prompt_tokens", "Number of prefill tokens processed."
        ).labels(*values)
        self.generation_tokens = counter(
            "vllm:generation_tokens", "Number of generation tokens processed."
        ).labels(*values)
        self._success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            [*labels, "finished_reason"],
            registry=r,
        )
        self.values = values
        token_buckets = build_1_2_5_buckets(max_model_len)
        self.request_prompt = histogram(
            "vllm:request_prompt_tokens", "Number of prefill tokens processed.", token_buckets
        ).labels(*values)
        self.request_generation = histogram(
            "vllm:request_generation_tokens",
            "Number of generation tokens processed.",
            token_buckets,
        ).labels(*values)
        self.max_tokens = histogram(
            "vllm:request_params_max_tokens",
            "Histogram of the max_tokens request parameter.",
            token_buckets,
        ).labels(*values)
        self.iteration_tokens = histogram(
            "vllm:iteration_tokens_total",
            "Histogram of number of tokens per engine_step.",
            [float(b) for b in ITERATION_TOKEN_BUCKETS],
        ).labels(*values)
        self.ttft = histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            TTFT_BUCKETS,
        ).labels(*values)
        self.tpot = histogram(
            "vllm:time_per_output_token_seconds",
            "Histogram of time per output token in seconds.",
            TPOT_BUCKETS,
        ).labels(*values)
        self.itl = histogram(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            TPOT_BUCKETS,
        ).labels(*values)
        self.request_tpot = histogram(
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            TPOT_BUCKETS,
        ).labels(*values)
        self.e2e = histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            REQUEST_LATENCY_BUCKETS,
        ).labels(*values)
        self.queue = histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            REQUEST_LATENCY_BUCKETS,
        ).labels(*values)
        self.inference = histogram(
            "vllm:request_inference_time_seconds",
            "Histogram of time spent in RUNNING phase for request.",
            REQUEST_LATENCY_BUCKETS,
        ).labels(*values)
        self.prefill = histogram(
            "vllm:request_prefill_time_seconds",
            "Histogram of time spent in PREFILL phase for request.",
            REQUEST_LATENCY_BUCKETS,
        ).labels(*values)
        self.decode = histogram(
            "vllm:request_decode_time_seconds",
            "Histogram of time spent in DECODE phase for request.",
            REQUEST_LATENCY_BUCKETS,
        ).labels(*values)

    def success(self, reason: str) -> None:
        self._success.labels(*self.values, reason).inc()


@dataclass(eq=False)
class LiveRequest:
    """A request being served: the engine's view plus the wall-clock times."""

    engine: EngineRequest
    received: float
    tokens: asyncio.Queue[int | None] = field(default_factory=asyncio.Queue)
    sent: int = 0
    finish_reason: str = "length"
    token_times: list[float] = field(default_factory=list)


class LiveEngine:
    """Steps the scheduler in real time: a step's tokens appear when its duration is over."""

    def __init__(self, row: PerfRow, model: str, max_model_len: int = 32768) -> None:
        self.row = row
        self.scheduler = Scheduler(row, classes=1)
        self.cache = PrefixCache(row.kv_tokens // BLOCK_TOKENS)
        self.metrics = Metrics(model, max_model_len)
        self.live: dict[int, LiveRequest] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def submit(
        self, prompt_pieces: list[str], max_tokens: int, finish_reason: str = "length"
    ) -> LiveRequest:
        cached = self.cache.lookup_and_insert(prompt_pieces)
        self.metrics.prefix_queries.inc(len(prompt_pieces))
        self.metrics.prefix_hits.inc(cached)
        self.metrics.max_tokens.observe(max_tokens)
        arrival = asyncio.get_running_loop().time()
        request = EngineRequest(
            len(prompt_pieces), max_tokens, cached_tokens=cached, arrival=arrival
        )
        self.scheduler.add(request)
        live = LiveRequest(request, time.monotonic(), finish_reason=finish_reason)
        self.live[request.id] = live
        self._update_gauges()
        self._wake.set()
        return live

    def abort(self, live: LiveRequest) -> None:
        if live.engine.finished is None and not live.engine.aborted:
            self.scheduler.abort(live.engine)
            self.metrics.success("abort")
        self.live.pop(live.engine.id, None)
        self._update_gauges()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            if self.scheduler.idle:
                self._wake.clear()
                await self._wake.wait()
                deadline = loop.time()
            # The scheduler's clock follows the wall clock between bursts.
            self.scheduler.now = max(self.scheduler.now, deadline)
            step = self.scheduler.step()
            deadline += step.duration_s
            behind = loop.time() - deadline
            if behind > step.duration_s:  # the host is slow: do not race to catch up
                deadline = loop.time()
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            self._deliver(step.first_tokens, step.finished, step.prefill_tokens, step.decode_tokens)

    def _deliver(
        self,
        first: list[EngineRequest],
        finished: list[EngineRequest],
        prefill_tokens: int,
        decode_tokens: int,
    ) -> None:
        now = time.monotonic()
        metrics = self.metrics
        metrics.iteration_tokens.observe(prefill_tokens + decode_tokens)
        metrics.prompt_tokens.inc(prefill_tokens)
        metrics.generation_tokens.inc(decode_tokens + len(first))
        touched = [r for r in (*first, *finished) if r.id in self.live]
        touched += [r for r in self.scheduler.decoding.values() if r not in first]
        for request in dict.fromkeys(touched):
            live = self.live.get(request.id)
            if live is None:
                continue
            count = self.scheduler.tokens_generated(request)
            for _ in range(count - live.sent):
                live.token_times.append(now)
                live.tokens.put_nowait(1)
            live.sent = count
        for request in finished:
            live = self.live.pop(request.id, None)
            if live is not None:
                self._observe_finished(live)
                live.tokens.put_nowait(None)
        self._update_gauges()

    def _observe_finished(self, live: LiveRequest) -> None:
        metrics = self.metrics
        request = live.engine
        times = live.token_times
        first = times[0] if times else time.monotonic()
        metrics.ttft.observe(first - live.received)
        for a, b in itertools.pairwise(times):
            metrics.itl.observe(b - a)
            metrics.tpot.observe(b - a)
        if len(times) > 1:
            metrics.request_tpot.observe((times[-1] - times[0]) / (len(times) - 1))
        end = times[-1] if times else first
        queued = (request.admitted or request.arrival) - request.arrival
        metrics.e2e.observe(end - live.received)
        metrics.queue.observe(queued)
        metrics.inference.observe(max(0.0, end - live.received - queued))
        metrics.prefill.observe(max(0.0, first - live.received - queued))
        metrics.decode.observe(end - first)
        metrics.request_prompt.observe(request.prompt_tokens)
        metrics.request_generation.observe(request.generated)
        metrics.success(live.finish_reason)

    def _update_gauges(self) -> None:
        self.metrics.running.set(self.scheduler.running)
        self.metrics.waiting.set(len(self.scheduler.waiting))
        self.metrics.kv_usage.set(self.scheduler.kv_usage)
