"""The real Qwen2.5-Coder 0.5B GGUF, loaded by catalog name: its FIM tokens are found, the
qwen template is chosen, and it fills a hole in the middle of a file sensibly.

Plus: a profile names a catalog model (`model_path` still wins), and a missing one fails
with the install command.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from models import QWEN_05B, installed_model

from ouzel.inference import catalog
from ouzel.inference.llama_cpp import LlamaCppBackend, LlamaOptions, fim_token_texts
from ouzel.inference.router import default_backend_factory
from ouzel.inference.types import BackendUnavailable, CancelToken, CompletionRequest
from ouzel.server.settings import ModelProfile

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def qwen() -> AsyncIterator[LlamaCppBackend]:
    installed_model(QWEN_05B)
    backend = LlamaCppBackend(None, LlamaOptions(n_ctx=1024), catalog_name=QWEN_05B)
    await backend.wait_ready()
    yield backend
    backend.close()


async def test_the_catalog_model_loads_with_the_qwen_fim_template(qwen: LlamaCppBackend) -> None:
    assert qwen.model_path == catalog.model_path(QWEN_05B)
    assert qwen.name == f"llama_cpp:{QWEN_05B}"
    assert qwen.metadata["general.architecture"] == "qwen2"
    assert qwen._llm is not None
    assert fim_token_texts(qwen._llm) == {
        "pre": "<|fim_prefix|>",
        "suf": "<|fim_suffix|>",
        "mid": "<|fim_middle|>",
    }
    template = qwen.template
    assert template.family == "qwen" and template.is_fim
    assert (template.fim_prefix, template.fim_suffix, template.fim_middle) == (
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
    )
    assert template.file_sep == "<|file_sep|>"


async def infill(qwen: LlamaCppBackend, prefix: str, suffix: str, max_tokens: int = 16) -> str:
    prompt = qwen.template.render(prefix, suffix, "shapes.py")
    request = CompletionRequest(prompt, max_tokens=max_tokens, stop=("\n", *qwen.template.stop))
    result = await qwen.complete(request, CancelToken())
    assert result.prompt_tokens > 10
    return result.text


async def test_it_fills_the_middle_of_a_line(qwen: LlamaCppBackend) -> None:
    prefix = "import math\n\n\ndef distance(x, y):\n    return math.sqrt(x * x + "
    assert (await infill(qwen, prefix, ")\n")).startswith("y * y")
    prefix = "def rectangle_area(width, height):\n    return "
    assert (await infill(qwen, prefix, "\n")).strip() == "width * height"


async def test_it_uses_the_code_after_the_cursor(qwen: LlamaCppBackend) -> None:
    # Only the suffix says which name the missing line must define.
    prefix = "def mean(values):\n"
    suffix = "\n    return total / len(values)\n"
    text = await infill(qwen, prefix, suffix, max_tokens=24)
    assert text.strip().startswith("total"), text


async def test_a_profile_names_a_catalog_model_and_model_path_wins(tmp_path: Path) -> None:
    named = default_backend_factory("local", ModelProfile(model=QWEN_05B))
    explicit = default_backend_factory(
        "local", ModelProfile(model=QWEN_05B, model_path=str(tmp_path / "mine.gguf"))
    )
    try:
        assert isinstance(named, LlamaCppBackend) and isinstance(explicit, LlamaCppBackend)
        assert named.catalog_name == QWEN_05B and named.model_path is None
        assert named.model_file_name == "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"  # not loaded
        assert explicit.model_path == tmp_path / "mine.gguf"
        assert explicit.catalog_name == QWEN_05B  # unused: model_path wins when loading
    finally:
        named.close()
        explicit.close()
    default = default_backend_factory("local", ModelProfile())
    try:
        assert isinstance(default, LlamaCppBackend)
        assert default.catalog_name == catalog.default_model() == QWEN_05B
    finally:
        default.close()


async def test_a_missing_catalog_model_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(catalog.MODELS_DIR_ENV, str(tmp_path))
    backend = LlamaCppBackend(None, catalog_name="qwen2.5-coder-1.5b")
    try:
        with pytest.raises(
            BackendUnavailable, match=re.escape("ouzel models install qwen2.5-coder-1.5b")
        ):
            await backend.wait_ready()
        assert backend.state == "failed"
    finally:
        backend.close()
    unknown = LlamaCppBackend(None, catalog_name="no-such-model")
    try:
        with pytest.raises(BackendUnavailable, match="unknown model 'no-such-model'"):
            await unknown.wait_ready()
    finally:
        unknown.close()
