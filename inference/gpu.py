"""The GPU box: the `vllm serve` command for a model profile (`ouzel gpu serve`).

What the command always has, and why:

- `--host 127.0.0.1` unless told otherwise: vLLM binds every interface by default, and its
  API key guards only the `/v1` routes. Reach it through an SSH tunnel or a TLS proxy.
- An API key, passed in the `VLLM_API_KEY` environment variable rather than as
  `--api-key`, so it never shows in `ps` on a shared machine (vLLM reads either).
- `--served-model-name`, so clients ask for a short stable name, not a weights path.
- `--enable-prefix-caching`: chat and agent turns resend a long common prefix.
- `--max-model-len` from the profile's context length.
- `--enable-auto-tool-choice --tool-call-parser NAME` for the model family, so agent tool
  calls come back as structured `tool_calls`.
"""

from __future__ import annotations

import re
import secrets
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ouzel.inference.privacy import is_loopback_host

DEFAULT_PORT = 8000
VLLM_KEY_VARIABLE = "VLLM_API_KEY"

# (pattern on the lower-cased model name, vLLM tool-call parser); the first match wins,
# so specific names come before their family.
TOOL_CALL_PARSERS: list[tuple[str, str]] = [
    (r"qwen3[-_.]?coder", "qwen3_coder"),
    (r"qwen|qwq|hermes", "hermes"),
    (r"llama[-_.]?4", "llama4_pythonic"),
    (r"llama[-_.]?3", "llama3_json"),
    (r"devstral|codestral|mistral|mixtral|ministral|magistral", "mistral"),
    (r"deepseek[-_.]?v3\.1", "deepseek_v31"),
    (r"deepseek[-_.]?(v3|r1)", "deepseek_v3"),
    (r"granite[-_.]?20b[-_.]?functioncalling", "granite-20b-fc"),
    (r"granite", "granite"),
    (r"internlm", "internlm"),
    (r"jamba", "jamba"),
    (r"phi[-_.]?4[-_.]?mini", "phi4_mini_json"),
    (r"xlam", "xlam"),
    (r"minimax", "minimax"),
    (r"kimi[-_.]?k2", "kimi_k2"),
    (r"hunyuan", "hunyuan_a13b"),
    (r"glm[-_.]?4\.[56]", "glm45"),
    (r"gpt[-_.]?oss", "openai"),
    (r"seed[-_.]?oss", "seed_oss"),
]


class GpuServeError(Exception):
    """The command cannot be built or run; the message says what to do."""


def tool_call_parser_for(model: str) -> str | None:
    """vLLM's tool-call parser for a model name (None when the family is unknown)."""
    name = model.lower()
    for pattern, parser in TOOL_CALL_PARSERS:
        if re.search(pattern, name):
            return parser
    return None


@dataclass(frozen=True)
class KeySource:
    """Where the API key comes from: a variable or a file (never the command line)."""

    env: str | None = None
    file: str | None = None

    def read(self) -> str:
        if self.env:
            import os

            value = os.environ.get(self.env, "").strip()
            if not value:
                raise GpuServeError(f"the API key variable {self.env} is not set (or empty)")
            return value
        if self.file:
            path = Path(self.file).expanduser()
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise GpuServeError(f"cannot read the API key file {path}: {exc}") from exc
            if not value:
                raise GpuServeError(f"the API key file {path} is empty")
            return value
        raise GpuServeError("no API key source")

    def shell(self) -> str:
        """A shell expression that yields the key, for the printed command."""
        if self.env:
            return f'"${self.env}"'
        return f'"$(cat {shlex.quote(str(Path(self.file or "").expanduser()))})"'


@dataclass(frozen=True)
class VllmOptions:
    weights: str
    served_model_name: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_model_len: int | None = None
    tool_call_parser: str | None = None
    key: KeySource | None = None
    data_parallel_size: int = 1  # engine replicas on this box, one per GPU group
    tensor_parallel_size: int = 1  # GPUs one replica spans
    extra: tuple[str, ...] = ()


@dataclass
class VllmLaunch:
    argv: list[str]
    key: KeySource
    warnings: list[str] = field(default_factory=list)

    def shell_line(self) -> str:
        """The command as one runnable shell line (the key by reference, never its value)."""
        return f"{VLLM_KEY_VARIABLE}={self.key.shell()} {shlex.join(self.argv)}"


def build_vllm_command(options: VllmOptions) -> VllmLaunch:
    if options.key is None:
        raise GpuServeError(
            "no API key: pass --api-key-env VAR or --api-key-file FILE (or set `api_key_env` / "
            "`api_key_file` in the profile); `--generate-key FILE` writes a new one"
        )
    if not 0 < options.port < 65536:
        raise GpuServeError(f"port out of range: {options.port}")
    argv = [
        "vllm",
        "serve",
        options.weights,
        "--host",
        options.host,
        "--port",
        str(options.port),
        "--served-model-name",
        options.served_model_name,
        "--enable-prefix-caching",
    ]
    if options.max_model_len:
        argv += ["--max-model-len", str(options.max_model_len)]
    for flag, size in (
        ("--data-parallel-size", options.data_parallel_size),
        ("--tensor-parallel-size", options.tensor_parallel_size),
    ):
        if size < 1:
            raise GpuServeError(f"{flag} must be at least 1, got {size}")
        if size > 1:
            argv += [flag, str(size)]
    warnings = []
    if options.tool_call_parser:
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", options.tool_call_parser]
    else:
        warnings.append(
            f"no tool-call parser is known for {options.weights}: agent tool calls will come "
            "back as plain text; set `tool_call_parser` in the profile or pass "
            "--tool-call-parser"
        )
    if not is_loopback_host(options.host):
        warnings.append(
            f"vLLM will listen on {options.host}, reachable from other machines; its API key "
            "guards only the /v1 routes and the traffic is not encrypted. Prefer the default "
            "127.0.0.1 with an SSH tunnel, or put a TLS proxy in front."
        )
    argv += list(options.extra)
    return VllmLaunch(argv, options.key, warnings)


def port_of(base_url: str | None) -> int | None:
    if not base_url:
        return None
    try:
        return urlsplit(base_url).port
    except ValueError:
        return None


def find_vllm() -> str:
    """The `vllm` executable, or GpuServeError explaining how to get it."""
    path = shutil.which("vllm")
    if path is None:
        raise GpuServeError(
            "vLLM is not installed on this machine. On the GPU box run "
            "`pip install 'ouzel[gpu]'` (vLLM needs an NVIDIA GPU with CUDA); "
            "`ouzel gpu serve --dry-run` prints the command without running it."
        )
    return path


def generate_key(path: Path) -> KeySource:
    """Write a new random key to `path` (mode 600) unless it exists; returns its source."""
    path = path.expanduser()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
    return KeySource(file=str(path))
