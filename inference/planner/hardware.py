"""GPU and model specifications, published anchor figures, and the derived benchmark rows.

Every figure carries its source. A `PerfRow` is *derived* from a GPU datasheet and a
model's config with two efficiencies: memory-bandwidth efficiency, fitted to the one
published single-stream vLLM figure we trust (Qwen2.5-7B-Instruct on an RTX A6000, TPOT
21.9 ms at concurrency 1), and prefill MFU, an assumption. Measured rows (`ouzel plan
measure`) replace derived ones for the same model × GPU × TP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ouzel.inference.planner.perf import PerfRow

GB = 1e9


@dataclass(frozen=True)
class GpuSpec:
    name: str
    memory_gb: float
    bandwidth_gbs: float  # HBM/GDDR bandwidth, GB/s
    bf16_tflops: float  # dense (no sparsity)
    price_per_hour: float  # USD per GPU-hour
    nvlink: bool
    source: str
    price_source: str = "assumed on-demand cloud price per GPU-hour; set your own in the config"

    @property
    def big(self) -> bool:
        """vLLM picks larger default batch budgets on GPUs with ≥ 70 GiB."""
        return self.memory_gb >= 70


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hf_id: str
    params_b: float
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    max_context: int
    source: str
    bytes_per_param: float = 2.0  # BF16

    @property
    def weights_bytes(self) -> float:
        return self.params_b * 1e9 * self.bytes_per_param

    @property
    def kv_bytes_per_token(self) -> int:
        # K and V, every layer, every KV head, BF16.
        return 2 * self.layers * self.kv_heads * self.head_dim * 2


GPUS: dict[str, GpuSpec] = {
    gpu.name: gpu
    for gpu in [
        GpuSpec("L4", 24, 300, 121, 0.98, False, "https://www.nvidia.com/en-us/data-center/l4/"),
        GpuSpec(
            "A10G",
            24,
            600,
            125,
            1.01,
            False,
            "https://www.nvidia.com/en-us/data-center/products/a10-gpu/",
        ),
        GpuSpec(
            "L40S", 48, 864, 362, 1.86, False, "https://www.nvidia.com/en-us/data-center/l40s/"
        ),
        GpuSpec(
            "A6000",
            48,
            768,
            155,
            0.80,
            False,
            "https://www.nvidia.com/en-us/design-visualization/rtx-a6000/",
        ),
        GpuSpec(
            "A100-80GB", 80, 2039, 312, 3.40, True, "https://www.nvidia.com/en-us/data-center/a100/"
        ),
        GpuSpec(
            "H100",
            80,
            3350,
            989,
            4.50,
            True,
            "https://www.nvidia.com/en-us/data-center/h100/ (SXM)",
        ),
    ]
}

_QWEN_CONFIG = "config.json of Qwen/{} on Hugging Face"
MODELS: dict[str, ModelSpec] = {
    model.name: model
    for model in [
        ModelSpec(
            "qwen2.5-coder-0.5b",
            "Qwen/Qwen2.5-Coder-0.5B-Instruct",
            0.494,
            24,
            896,
            2,
            64,
            32768,
            _QWEN_CONFIG.format("Qwen2.5-Coder-0.5B-Instruct"),
        ),
        ModelSpec(
            "qwen2.5-coder-1.5b",
            "Qwen/Qwen2.5-Coder-1.5B-Instruct",
            1.54,
            28,
            1536,
            2,
            128,
            32768,
            _QWEN_CONFIG.format("Qwen2.5-Coder-1.5B-Instruct"),
        ),
        ModelSpec(
            "qwen2.5-coder-7b",
            "Qwen/Qwen2.5-Coder-7B-Instruct",
            7.61,
            28,
            3584,
            4,
            128,
            32768,
            _QWEN_CONFIG.format("Qwen2.5-Coder-7B-Instruct"),
        ),
        ModelSpec(
            "qwen2.5-coder-14b",
            "Qwen/Qwen2.5-Coder-14B-Instruct",
            14.7,
            48,
            5120,
            8,
            128,
            32768,
            _QWEN_CONFIG.format("Qwen2.5-Coder-14B-Instruct"),
        ),
        ModelSpec(
            "qwen2.5-coder-32b",
            "Qwen/Qwen2.5-Coder-32B-Instruct",
            32.5,
            64,
            5120,
            8,
            128,
            32768,
            _QWEN_CONFIG.format("Qwen2.5-Coder-32B-Instruct"),
        ),
    ]
}


@dataclass(frozen=True)
class PublishedFigure:
    """A number someone measured on vLLM and published; used to fit or to check."""

    model: str
    gpu: str
    tp: int
    metric: str
    value_ms: float
    source: str


# Qwen2.5-7B-Instruct has the architecture of Qwen2.5-Coder-7B (same config sizes).
A6000_TPOT = PublishedFigure(
    "qwen2.5-coder-7b",
    "A6000",
    1,
    "TPOT p50 at concurrency 1 (vLLM 0.23.0, Qwen2.5-7B-Instruct)",
    21.9,
    "https://ld-singh.github.io/ai-factory-ops-lab/portfolio-lab/06-validation-reports/inference-benchmark-report/",
)

# vLLM's per-step CPU work (scheduling, sampling, detokenising) with CUDA graphs: ~1 ms.
STEP_OVERHEAD_MS = 1.0
# Prefill reaches ~40-55% of dense BF16 peak on vLLM; assumption, replace with a measurement.
PREFILL_MFU = 0.45
GPU_MEMORY_UTILIZATION = 0.90  # vLLM's default --gpu-memory-utilization
ACTIVATION_RESERVE_GB = 1.5  # per GPU: activations, CUDA graphs, sampler (assumption)


def tp_efficiency(gpu: GpuSpec, tp: int) -> float:
    """Share of linear scaling kept at tensor-parallel size `tp` (all-reduce per layer):
    8% lost per doubling over NVLink, 18% over PCIe (assumption)."""
    loss = 0.92 if gpu.nvlink else 0.82
    return float(loss ** math.log2(tp)) if tp > 1 else 1.0


def _raw_weights_ms(model: ModelSpec, gpu: GpuSpec, tp: int) -> float:
    return model.weights_bytes / (gpu.bandwidth_gbs * GB * tp * tp_efficiency(gpu, tp)) * 1000


def bandwidth_efficiency() -> float:
    """Achieved share of HBM bandwidth, fitted so the derived A6000 row reproduces the
    published single-stream TPOT (KV reads at concurrency 1 are negligible)."""
    figure = A6000_TPOT
    raw = _raw_weights_ms(MODELS[figure.model], GPUS[figure.gpu], figure.tp)
    return raw / (figure.value_ms - STEP_OVERHEAD_MS)


def fits(model: ModelSpec, gpu: GpuSpec, tp: int) -> bool:
    return kv_tokens(model, gpu, tp) >= 4096


def kv_tokens(model: ModelSpec, gpu: GpuSpec, tp: int) -> int:
    free = tp * (gpu.memory_gb * GPU_MEMORY_UTILIZATION - ACTIVATION_RESERVE_GB) * GB
    free -= model.weights_bytes
    return max(0, int(free / model.kv_bytes_per_token))


def derived_row(model: ModelSpec, gpu: GpuSpec, tp: int) -> PerfRow:
    """A row from datasheet and model config (provenance `derived`)."""
    efficiency = bandwidth_efficiency()
    scale = tp * tp_efficiency(gpu, tp)
    bandwidth = gpu.bandwidth_gbs * GB * scale * efficiency  # bytes/s
    flops = gpu.bf16_tflops * 1e12 * scale * PREFILL_MFU
    return PerfRow(
        model=model.name,
        gpu=gpu.name,
        tp=tp,
        overhead_ms=STEP_OVERHEAD_MS,
        weights_ms=model.weights_bytes / bandwidth * 1000,
        flop_ms_per_token=2 * model.params_b * 1e9 / flops * 1000,
        # Attention FLOPs of one token over 1,000 tokens of context: 4·layers·hidden·1000.
        attn_ms_per_token_kctx=4 * model.layers * model.hidden * 1000 / flops * 1000,
        kv_ms_per_kctx=model.kv_bytes_per_token * 1000 / bandwidth * 1000,
        kv_tokens=kv_tokens(model, gpu, tp),
        max_num_seqs=1024 if gpu.big else 256,
        max_batched_tokens=8192 if gpu.big else 2048,
        provenance="derived",
        source=(
            f"roofline from {gpu.source} and {model.source}; bandwidth efficiency "
            f"{efficiency:.2f} fitted to {A6000_TPOT.source}; prefill MFU {PREFILL_MFU} assumed"
        ),
    )
