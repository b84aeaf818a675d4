"""The engine model and its simulation: latency grows with load, prefix hits make
prefill cheaper, the KV limit makes requests queue, decodes slow down beside prefills."""

from __future__ import annotations

import pytest

from ouzel.inference.planner.hardware import A6000_TPOT, GPUS, MODELS, derived_row, fits, kv_tokens
from ouzel.inference.planner.perf import EngineRequest, PerfRow, Scheduler
from ouzel.inference.planner.simulate import simulate
from ouzel.inference.planner.workload import GHOST, RequestClass, Slo, TokenDist

ROW = derived_row(MODELS["qwen2.5-coder-7b"], GPUS["L40S"], 1)
ONE = RequestClass("fim", 1.0, TokenDist(1500, 1500), TokenDist(32, 32), 0.0, Slo(200, 30))


def run_to_end(scheduler: Scheduler, limit: int = 100_000) -> None:
    for _ in range(limit):
        if scheduler.idle:
            return
        scheduler.step()
    raise AssertionError(f"the scheduler did not drain in {limit} steps")


def test_the_derived_a6000_row_reproduces_the_published_tpot() -> None:
    row = derived_row(MODELS[A6000_TPOT.model], GPUS[A6000_TPOT.gpu], 1)
    itl = row.step_ms(0, 0.0, 1, 0.5)
    assert itl == pytest.approx(A6000_TPOT.value_ms, rel=0.02)


def test_ttft_p95_grows_with_the_request_rate() -> None:
    p95s = [simulate(ROW, [ONE], [rate], seed=5).classes[0].ttft_p95_ms for rate in (1, 4, 8, 12)]
    assert p95s == sorted(p95s), p95s
    assert p95s[-1] > 1.5 * p95s[0], p95s


def test_prefix_hits_lower_ttft() -> None:
    cold = simulate(ROW, [ONE], [6.0], hits=[0.0], seed=2).classes[0]
    warm = simulate(ROW, [ONE], [6.0], hits=[0.8], seed=2).classes[0]
    assert warm.ttft_p50_ms < 0.6 * cold.ttft_p50_ms
    assert warm.ttft_p95_ms < cold.ttft_p95_ms


def test_kv_capacity_limits_concurrency() -> None:
    small = PerfRow("m", "g", 1, 1.0, 10.0, 0.01, 0.0, 0.0, kv_tokens=3000)
    scheduler = Scheduler(small, classes=1)
    requests = [EngineRequest(1000, 400) for _ in range(3)]
    for request in requests:
        scheduler.add(request)
    scheduler.step()
    # 2 × 1,400 tokens fit in 3,000; the third waits until one finishes.
    assert scheduler.running == 2 and len(scheduler.waiting) == 1
    assert scheduler.kv_usage == pytest.approx(2800 / 3000)
    run_to_end(scheduler)
    assert all(r.finished is not None for r in requests)
    assert requests[2].admitted is not None and requests[2].admitted >= (requests[0].finished or 0)
    assert scheduler.kv_used == 0


def test_a_request_larger_than_the_kv_cache_is_refused() -> None:
    small = PerfRow("m", "g", 1, 1.0, 10.0, 0.01, 0.0, 0.0, kv_tokens=1000)
    with pytest.raises(ValueError, match="KV tokens"):
        Scheduler(small).add(EngineRequest(900, 200))


def test_decode_steps_slow_down_while_prefills_share_them() -> None:
    scheduler = Scheduler(ROW, classes=1)
    decoding = EngineRequest(200, 50)
    scheduler.add(decoding)
    scheduler.step()  # prefill done, first token
    alone = scheduler.step().duration_s
    scheduler.add(EngineRequest(4000, 10))
    shared = scheduler.step()
    assert shared.prefill_tokens == ROW.max_batched_tokens - 1  # the budget minus the decode
    assert shared.duration_s > 3 * alone


def test_chunked_prefill_takes_several_steps_and_counts_tokens() -> None:
    scheduler = Scheduler(ROW, classes=1)
    request = EngineRequest(5000, 3)
    scheduler.add(request)
    steps = [scheduler.step() for _ in range(3)]
    assert [s.prefill_tokens for s in steps] == [2048, 2048, 904]
    assert steps[2].first_tokens == [request]
    run_to_end(scheduler)
    assert request.generated == 3 and scheduler.kv_used == 0


def test_abort_frees_seat_and_kv_at_once() -> None:
    scheduler = Scheduler(ROW, classes=1)
    request = EngineRequest(100, 100)
    scheduler.add(request)
    scheduler.step()
    scheduler.step()
    assert scheduler.tokens_generated(request) == 2
    scheduler.abort(request)
    assert scheduler.idle and scheduler.kv_used == 0
    assert scheduler._decode_kctx == pytest.approx(0.0, abs=1e-9)


def test_weights_that_do_not_fit_leave_no_candidate() -> None:
    big = MODELS["qwen2.5-coder-32b"]
    assert not fits(big, GPUS["L4"], 1)
    assert fits(big, GPUS["H100"], 1)
    assert kv_tokens(big, GPUS["H100"], 2) > 2 * kv_tokens(big, GPUS["H100"], 1)


def test_cancelled_ghost_text_loads_the_engine_but_is_not_in_ttft() -> None:
    light = simulate(ROW, [GHOST], [4.0], seed=3)
    never_cancelled = simulate(
        ROW, [GHOST.__class__(**{**GHOST.__dict__, "cancel_share": 0.0})], [4.0], seed=3
    )
    assert light.classes[0].requests < never_cancelled.classes[0].requests


def test_fast_forwarding_decode_only_steps_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    chat = RequestClass(
        "chat", 1.0, TokenDist(500, 4000, 1500), TokenDist(50, 600, 200), 0.3, Slo(1000, 60)
    )
    fast = simulate(ROW, [GHOST, chat], [2.0, 0.5], seed=4)
    monkeypatch.setattr(Scheduler, "fast_forward", lambda self, until: (0, 0.0))
    slow = simulate(ROW, [GHOST, chat], [2.0, 0.5], seed=4)
    assert slow.steps == fast.steps
    for a, b in zip(fast.classes, slow.classes, strict=True):
        assert a.requests == b.requests
        assert a.ttft_p95_ms == pytest.approx(b.ttft_p95_ms, rel=1e-6)
        assert a.itl_p95_ms == pytest.approx(b.itl_p95_ms, rel=0.02)


def test_ghost_text_is_a_fim_shape_not_the_seed_chat_shape() -> None:
    # The seed planner models completion as 512 → 256 tokens; FIM is 1-2k in, ≤ 64 out.
    assert GHOST.prompt.low >= 1024 and GHOST.prompt.high <= 2048
    assert GHOST.output.high <= 64
    assert GHOST.cancel_share > 0.5
