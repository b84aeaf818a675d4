"""`ouzel plan measure`: a GuideLLM-like sweep against any OpenAI-compatible server, fitted
into a benchmark row with provenance `measured`.

1. synchronous: one request at a time at two prompt lengths → prefill cost per token
   (TTFT slope), fixed per-request cost (intercept), decode step (ITL at batch 1);
2. concurrent: a few streams at once → does the server batch (tokens/s grows) or
   serialise (llama.cpp's server: TTFT grows, ITL does not)?
3. a Poisson rate ladder from light load to ~90% of the measured capacity, recording
   TTFT and ITL percentiles per rate (what `benchmarks/sim_calibration.py` compares).

Prompts start with a fresh nonce so no request hits a prefix cache; they ask the model
to keep counting so it rarely stops before `max_tokens`.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from openai import AsyncOpenAI

from ouzel.inference.planner.perf import PerfRow
from ouzel.inference.planner.simulate import percentile

MIN_REQUESTS_PER_RATE = 6  # a rate point with fewer requests says nothing about p95
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "river",
    "stone",
    "cloud",
    "maple",
    "orbit",
    "signal",
    "window",
    "copper",
    "lantern",
]


class MeasureError(RuntimeError):
    """The sweep cannot run against this endpoint; the message says why."""


@dataclass
class Sample:
    prompt_tokens: int
    ttft_s: float
    itls_s: list[float]
    tokens: int


@dataclass(frozen=True)
class LadderPoint:
    rate: float
    requests: int
    ttft_p50_ms: float
    ttft_p95_ms: float
    itl_p50_ms: float
    itl_p95_ms: float


@dataclass
class Measurement:
    row: PerfRow
    ladder: list[LadderPoint]
    notes: list[str] = field(default_factory=list)
    prompt_tokens: int = 0  # of the ladder's prompts, as the server counted them
    rows_per_rate: list[PerfRow] = field(default_factory=list)  # refits before each rate


def make_prompt(words: int, rng: random.Random) -> str:
    filler = " ".join(rng.choice(WORDS) for _ in range(words))
    return f"Note {rng.getrandbits(48):x}: {filler}\nCount upwards: 1 2 3 4 5 6 7 8"


class Client:
    """Streaming completions against one endpoint, timing every token."""

    def __init__(
        self, base_url: str, api_key: str | None, model: str | None, timeout_s: float = 120
    ) -> None:
        self.openai = AsyncOpenAI(
            base_url=base_url, api_key=api_key or "none", timeout=timeout_s, max_retries=0
        )
        self.model = model

    async def resolve_model(self) -> str:
        if self.model:
            return self.model
        try:
            page = await self.openai.models.list()
        except Exception as exc:
            raise MeasureError(f"cannot list models at the endpoint: {exc}") from exc
        ids = [m.id for m in page.data]
        if not ids:
            raise MeasureError("the endpoint lists no models; pass --model")
        self.model = ids[0]
        return self.model

    async def prompt_tokens(self, prompt: str) -> int:
        reply = await self.openai.completions.create(
            model=await self.resolve_model(), prompt=prompt, max_tokens=1, temperature=0
        )
        if reply.usage is None:
            raise MeasureError("the endpoint returns no usage; cannot count prompt tokens")
        return int(reply.usage.prompt_tokens)

    async def stream(self, prompt: str, max_tokens: int, prompt_tokens: int) -> Sample:
        started = time.perf_counter()
        times: list[float] = []
        stream = await self.openai.completions.create(
            model=await self.resolve_model(),
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=0,
            stream=True,
        )
        async for event in stream:
            if event.choices and event.choices[0].text:
                times.append(time.perf_counter())
        if not times:
            raise MeasureError("a streamed completion returned no text")
        itls = [b - a for a, b in itertools.pairwise(times)]
        return Sample(prompt_tokens, times[0] - started, itls, len(times))

    async def aclose(self) -> None:
        await self.openai.close()


@dataclass
class PromptSet:
    """Prompts of one length with their measured token count."""

    words: int
    tokens: int
    rng: random.Random

    def next(self) -> str:
        return make_prompt(self.words, self.rng)


async def prompt_set(client: Client, target_tokens: int, seed: int) -> PromptSet:
    rng = random.Random(seed)
    words = max(4, target_tokens // 2)
    tokens = await client.prompt_tokens(make_prompt(words, random.Random(seed)))
    words = max(4, round(words * target_tokens / max(tokens, 1)))
    tokens = await client.prompt_tokens(make_prompt(words, random.Random(seed + 1)))
    return PromptSet(words, tokens, rng)


async def run_rate(
    client: Client, prompts: PromptSet, rate: float, seconds: float, max_tokens: int, seed: int
) -> LadderPoint:
    """Poisson arrivals at `rate` for `seconds`; every request is awaited."""
    rng = random.Random(seed)
    tasks: list[asyncio.Task[Sample]] = []
    start = time.perf_counter()
    next_at = 0.0
    while next_at < seconds:
        delay = start + next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(client.stream(prompts.next(), max_tokens, prompts.tokens)))
        next_at += rng.expovariate(rate)
    samples = await asyncio.gather(*tasks)
    return ladder_point(rate, samples)


def ladder_point(rate: float, samples: list[Sample]) -> LadderPoint:
    ttfts = sorted(s.ttft_s * 1000 for s in samples)
    itls = sorted(i * 1000 for s in samples for i in s.itls_s)
    return LadderPoint(
        rate,
        len(samples),
        percentile(ttfts, 0.5),
        percentile(ttfts, 0.95),
        percentile(itls, 0.5),
        percentile(itls, 0.95),
    )


async def measure(
    base_url: str,
    api_key: str | None,
    model: str | None,
    gpu: str,
    tp: int = 1,
    prompt_tokens: int = 256,
    output_tokens: int = 24,
    rates: int = 5,
    seconds_per_rate: float = 20.0,
    progress: Callable[[str], None] = lambda _: None,
    refit_each_rate: bool = False,
) -> Measurement:
    if rates < 1 or seconds_per_rate <= 0 or prompt_tokens < 8 or output_tokens < 2:
        raise MeasureError("need rates ≥ 1, seconds per rate > 0, prompt ≥ 8 and output ≥ 2 tokens")
    client = Client(base_url, api_key, model)
    try:
        name = await client.resolve_model()
        short = await prompt_set(client, max(8, prompt_tokens // 4), seed=1)
        long = await prompt_set(client, prompt_tokens, seed=2)
        progress(f"prompts: {short.tokens} and {long.tokens} tokens")
        sync: list[Sample] = []
        for prompts in (short, long, short, long, short, long):
            sync.append(await client.stream(prompts.next(), output_tokens, prompts.tokens))
        row, service_s = fit_row(name, gpu, tp, sync, long.tokens + output_tokens)
        progress(
            f"synchronous: TTFT {statistics.median(s.ttft_s for s in sync) * 1000:.0f} ms, service {service_s * 1000:.0f} ms"
        )
        concurrency = 4
        t0 = time.perf_counter()
        together = await asyncio.gather(
            *(client.stream(long.next(), output_tokens, long.tokens) for _ in range(concurrency))
        )
        parallel_s = time.perf_counter() - t0
        speedup = concurrency * service_s / parallel_s
        batching = speedup >= 2.0  # a batching engine gains far more at 4 streams; a serial one ~1×
        row = row.with_updates(max_num_seqs=256 if batching else 1)
        capacity = (speedup if batching else 1.0) / service_s
        progress(
            f"concurrent ×{concurrency}: {speedup:.2f}× the serial throughput → {'batches' if batching else 'serialises'}; capacity ≈ {capacity:.2f} req/s"
        )
        del together
        ladder = []
        refits: list[PerfRow] = []
        for index in range(rates):
            share = 0.15 + (0.9 - 0.15) * (index / max(1, rates - 1))
            rate = capacity * share
            if refit_each_rate:  # a shared box drifts: the service speed right before this rate
                again = [
                    await client.stream(p.next(), output_tokens, p.tokens)
                    for p in (short, long, short, long)
                ]
                refit, _ = fit_row(name, gpu, tp, again, long.tokens + output_tokens)
                refits.append(refit.with_updates(max_num_seqs=row.max_num_seqs))
            seconds = max(seconds_per_rate, MIN_REQUESTS_PER_RATE / rate)
            point = await run_rate(client, long, rate, seconds, output_tokens, seed=10 + index)
            progress(
                f"rate {point.rate:.2f}/s: {point.requests} requests, TTFT p50 {point.ttft_p50_ms:.0f} ms p95 {point.ttft_p95_ms:.0f} ms, ITL p50 {point.itl_p50_ms:.1f} ms"
            )
            ladder.append(point)
        return Measurement(
            row,
            ladder,
            [
                f"{'batching' if batching else 'serial'} server, speed-up ×{speedup:.2f} at {concurrency} streams"
            ],
            prompt_tokens=long.tokens,
            rows_per_rate=refits,
        )
    finally:
        await client.aclose()


def fit_row(
    model: str, gpu: str, tp: int, sync: list[Sample], kv_need: int
) -> tuple[PerfRow, float]:
    """Least-squares TTFT = request + prompt × per-token over the synchronous samples;
    decode step = median ITL. Returns the row and the mean service time of a long request."""
    xs = [float(s.prompt_tokens) for s in sync]
    ys = [s.ttft_s * 1000 for s in sync]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = (
        sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
        if spread
        else mean_y / mean_x
    )
    slope = max(slope, 1e-4)
    itl = (
        statistics.median(i * 1000 for s in sync for i in s.itls_s)
        if any(s.itls_s for s in sync)
        else 1.0
    )
    intercept = max(0.0, mean_y - slope * mean_x)
    row = PerfRow(
        model=model,
        gpu=gpu,
        tp=tp,
        overhead_ms=0.0,
        weights_ms=itl,
        flop_ms_per_token=slope,
        attn_ms_per_token_kctx=0.0,
        kv_ms_per_kctx=0.0,
        kv_tokens=max(kv_need * 64, 32768),
        max_num_seqs=1,
        max_batched_tokens=max(2048, kv_need),
        request_ms=intercept,
        provenance="measured",
        source=f"ouzel plan measure on {platform.node()}",
        machine=f"{platform.node()} {platform.machine()} ({platform.processor() or platform.system()})",
        date=datetime.date.today().isoformat(),
    )
    long_samples = [s for s in sync if s.prompt_tokens == max(xs)]
    service_s = statistics.fmean(s.ttft_s + sum(s.itls_s) for s in long_samples)
    return row, service_s
