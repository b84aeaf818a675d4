"""The settings model: the single source of truth for every option ouzel has.

Sources, later wins: defaults, the user file `$XDG_CONFIG_HOME/ouzel/config.toml`, the
workspace file `.ouzel/config.toml`, LSP `initializationOptions`, LSP
`workspace/configuration` (section "ouzel").

Every field carries a trust decision (`json_schema_extra={"trust": ...}`): the workspace file
belongs to whoever wrote the repository, so it may set only what cannot send code or secrets
elsewhere (see `settings_trust.py` for the policy and why).

Invalid values never stop the server: `load_settings` drops each invalid value, keeps the
valid rest, and returns one message per problem naming the value used instead.
`docs/CONFIGURATION.md` and the VS Code `package.json` contribution are generated from
and checked against this model.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ouzel.indexer.config import DEFAULT_SECRET_GLOBS as INDEXER_SECRET_GLOBS
from ouzel.server.settings_trust import filter_workspace_layer, snake

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LogLevel = Literal["error", "warning", "info", "debug"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class CompletionSettings(Section):
    """Ghost-text (inline) completions."""

    enabled: bool = Field(
        True, description="Offer AI completions.", json_schema_extra={"trust": "any"}
    )
    debounce_ms: int = Field(
        60,
        ge=0,
        le=2000,
        description="Wait this long after a keystroke before asking the model.",
        json_schema_extra={"trust": "any"},
    )
    max_tokens: int = Field(
        48,
        ge=1,
        le=1024,
        description="Most tokens the model may generate for one suggestion.",
        json_schema_extra={"trust": "any"},
    )
    max_time_ms: int = Field(
        1500,
        ge=50,
        le=60000,
        description="Stop generating after this long and show what there is.",
        json_schema_extra={"trust": "any"},
    )
    prompt_tokens: int = Field(
        1024,
        ge=64,
        le=32768,
        description="Token budget of a completion prompt (prefix, suffix, context).",
        json_schema_extra={"trust": "any"},
    )
    suffix_share: float = Field(
        0.2,
        ge=0.0,
        le=0.8,
        description="Share of the in-file budget given to the text after the cursor.",
        json_schema_extra={"trust": "any"},
    )
    multiline: bool = Field(
        True,
        description="Allow multi-line suggestions on empty lines and after a line that opens "
        "a block.",
        json_schema_extra={"trust": "any"},
    )
    max_lines: int = Field(
        8,
        ge=1,
        le=100,
        description="Most lines of a multi-line suggestion.",
        json_schema_extra={"trust": "any"},
    )
    temperature: float = Field(
        0.0,
        ge=0.0,
        le=2.0,
        description="Sampling temperature (0: greedy).",
        json_schema_extra={"trust": "any"},
    )
    jedi_timeout_ms: int = Field(
        300,
        ge=10,
        le=10000,
        description="Time cap for Jedi's semantic completions.",
        json_schema_extra={"trust": "any"},
    )
    context_timeout_ms: int = Field(
        150,
        ge=0,
        le=5000,
        description="Time cap for gathering repository context for one suggestion.",
        json_schema_extra={"trust": "any"},
    )
    warm_up: bool = Field(
        True,
        description="Evaluate the prompt for a place in the background (no text generated) "
        "when a file opens, when editing pauses and when the cursor rests, so the first "
        "suggestion there finds it in the model's KV cache. Local models only; any real "
        "request preempts it.",
        json_schema_extra={"trust": "any"},
    )
    warm_idle_ms: int = Field(
        800,
        ge=50,
        le=10000,
        description="Editing pause after which the place of the last edit is warmed up.",
        json_schema_extra={"trust": "any"},
    )
    cold_prompt_tokens: int = Field(
        192,
        ge=0,
        le=32768,
        description="A request whose full prompt has more than this many tokens not in the "
        "model's KV cache (a new place) gets a prompt of this size instead, without "
        "repository context; the full prompt is warmed when the cursor rests. 0: always the "
        "full prompt. Local models only.",
        json_schema_extra={"trust": "any"},
    )
    speculative: bool = Field(
        True,
        description="After a suggestion is returned, compute in the background the one that "
        "follows its acceptance, so accepting and continuing is answered from the cache. "
        "Local models only; any real request cancels it.",
        json_schema_extra={"trust": "any"},
    )


class ModelProfile(Section):
    """One model: where it runs and how to talk to it."""

    backend: Literal["llama_cpp", "openai"] = Field(
        "llama_cpp",
        description="`llama_cpp`: in process; `openai`: an OpenAI-compatible server.",
        json_schema_extra={"trust": "user"},
    )
    model_path: str | None = Field(
        None,
        description="GGUF file for `llama_cpp`; empty: the model named by `model`, else "
        "`qwen2.5-coder-0.5b` when installed, else the embedded `gemma3-270m`.",
        json_schema_extra={"trust": "user"},
    )
    model: str | None = Field(
        None,
        description="Model id sent to an OpenAI-compatible server (empty: the first one it "
        "serves); for `llama_cpp`, an installed model's name from `ouzel models list` (used when "
        "`model_path` is empty).",
        json_schema_extra={"trust": "any"},
    )
    base_url: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible server (…/v1).",
        json_schema_extra={"trust": "user"},
    )
    endpoints: list[str] = Field(
        default_factory=list,
        description="Several base URLs of the same model (…/v1): requests are spread over "
        "them in turn and an endpoint whose breaker is open is skipped until it recovers. "
        "Empty: `base_url` alone. For prefix-cache-aware routing put llm-d in front instead.",
        json_schema_extra={"trust": "user"},
    )
    location: Literal["auto", "local", "remote"] = Field(
        "auto",
        description="`auto` and `local`: remote unless `base_url` is a loopback address "
        "(127.0.0.0/8, ::1, localhost) or a unix socket, whatever this says; set `remote` for "
        "an SSH tunnel or proxy that forwards to another machine.",
        json_schema_extra={"trust": "user"},
    )
    api_key_env: str | None = Field(
        None,
        description="Name of the environment variable holding the API key.",
        json_schema_extra={"trust": "user"},
    )
    api_key_file: str | None = Field(
        None,
        description="File holding the API key (keep it private: chmod 600).",
        json_schema_extra={"trust": "user"},
    )
    api_key: str | None = Field(
        None,
        description="Never set: API keys are read only from `api_key_env` or `api_key_file`.",
        json_schema_extra={"trust": "user"},
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra HTTP headers.", json_schema_extra={"trust": "user"}
    )
    ca_bundle: str | None = Field(
        None, description="CA bundle for TLS to the server.", json_schema_extra={"trust": "user"}
    )
    connect_timeout_s: float = Field(
        3.0, gt=0, le=120, description="HTTP connect timeout.", json_schema_extra={"trust": "any"}
    )
    read_timeout_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="HTTP read timeout: longest wait for the next bytes.",
        json_schema_extra={"trust": "any"},
    )
    context_length: int = Field(
        4096,
        ge=256,
        le=1048576,
        description="Context window in tokens.",
        json_schema_extra={"trust": "any"},
    )
    template: Literal[
        "auto", "qwen", "starcoder", "deepseek", "codellama", "codestral", "plain"
    ] = Field(
        "auto",
        description="Prompt template; `auto` reads the GGUF metadata.",
        json_schema_extra={"trust": "any"},
    )
    n_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="CPU threads for llama.cpp.",
        json_schema_extra={"trust": "any"},
    )
    weights: str | None = Field(
        None,
        description="What `ouzel gpu serve` loads (a Hugging Face id or a folder); empty: `model`.",
        json_schema_extra={"trust": "user"},
    )
    stream_tool_calls: bool = Field(
        True,
        description="Stream answers when tools are offered (the agent). Off for servers that "
        "cannot stream tool calls, such as llama-cpp-python's `chatml-function-calling`.",
        json_schema_extra={"trust": "user"},
    )
    tool_results_as_user: bool = Field(
        False,
        description="Send tool results as `user` messages (still delimited as data), for chat "
        "templates that drop `tool` messages (llama-cpp-python's `chatml-function-calling`).",
        json_schema_extra={"trust": "user"},
    )
    tool_call_parser: str = Field(
        "auto",
        description="vLLM `--tool-call-parser` for `ouzel gpu serve`; `auto` picks it from the "
        "model family, `none` turns tool calls off.",
        json_schema_extra={"trust": "any"},
    )
    notes: str = Field(
        "",
        description="Free text, e.g. how fast this model is.",
        json_schema_extra={"trust": "any"},
    )

    @model_validator(mode="before")
    @classmethod
    def _hide_api_key(cls, data: Any) -> Any:
        # A key pasted into a settings file must not be echoed into logs and pop-ups by the
        # "invalid value" report: validation only ever sees a placeholder.
        if isinstance(data, Mapping) and data.get("api_key") is not None:
            return {**data, "api_key": "<hidden>"}
        return data

    @field_validator("api_key")
    @classmethod
    def _refuse_api_key(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError(
                "API keys are never read from settings; put the key in an environment "
                "variable named by `api_key_env` or in the file `api_key_file`"
            )
        return None


LOCAL_CHAT_PROFILE = "local-chat"


def local_chat_profile() -> ModelProfile:
    """The local model for chat and code actions: Qwen2.5-Coder-1.5B-Instruct (the embedded
    gemma3 270M cannot hold a conversation). `ouzel models install qwen2.5-coder-1.5b`."""
    return ModelProfile(backend="llama_cpp", model="qwen2.5-coder-1.5b", context_length=8192)


def _default_models() -> dict[str, ModelProfile]:
    return {"local": ModelProfile(backend="llama_cpp"), LOCAL_CHAT_PROFILE: local_chat_profile()}


TaskKind = Literal["inline_completion", "code_action", "chat", "agent", "embeddings"]


class RoutingSettings(Section):
    """Which model profile serves which kind of work, and when a server counts as down."""

    inline_completion: list[str] = Field(
        default_factory=lambda: ["local", "remote"],
        description="Profiles for ghost text, in order (the next only when one is unusable).",
        json_schema_extra={"trust": "user"},
    )
    code_action: list[str] = Field(
        default_factory=lambda: ["remote", LOCAL_CHAT_PROFILE],
        description="Profiles for AI code actions.",
        json_schema_extra={"trust": "user"},
    )
    chat: list[str] = Field(
        default_factory=lambda: ["remote", LOCAL_CHAT_PROFILE],
        description="Profiles for chat.",
        json_schema_extra={"trust": "user"},
    )
    agent: list[str] = Field(
        default_factory=lambda: ["remote", LOCAL_CHAT_PROFILE],
        description="Profiles for agent edits (in-process models are offered no tools: they "
        "can only answer in text).",
        json_schema_extra={"trust": "user"},
    )
    embeddings: list[str] = Field(
        default_factory=lambda: ["local"],
        description="Profiles for embeddings.",
        json_schema_extra={"trust": "user"},
    )
    allow_fallback: bool = Field(
        True,
        description="Fall back to the next profile (with a notice) when one is unusable.",
        json_schema_extra={"trust": "user"},
    )
    probe_interval_s: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="How often remote servers are probed (`/v1/models`).",
        json_schema_extra={"trust": "user"},
    )
    failure_threshold: int = Field(
        3,
        ge=1,
        le=100,
        description="Failures in a row after which a server is skipped.",
        json_schema_extra={"trust": "user"},
    )
    retry_after_s: float = Field(
        10.0,
        ge=0.1,
        le=3600,
        description="Wait before trying a skipped server again (doubles while it keeps failing).",
        json_schema_extra={"trust": "user"},
    )
    chat_time_cap_s: float = Field(
        120.0,
        ge=1,
        le=3600,
        description="Longest a chat answer (chat, code actions, agent) may take; it is "
        "stopped there, as it is when it starts repeating itself.",
        json_schema_extra={"trust": "any"},
    )


class TeamServerSettings(Section):
    """`ouzel serve --tcp` limits for a shared server (flags override these). User config
    only: a workspace file can never change what a server allows its clients."""

    tokens_file: str | None = Field(
        None,
        description="Per-user tokens file (`ouzel tokens add NAME`); like --tokens-file.",
        json_schema_extra={"trust": "user"},
    )
    max_message_mb: float = Field(
        32.0,
        gt=0,
        le=1024,
        description="Largest message a client may send (MB).",
        json_schema_extra={"trust": "user"},
    )
    max_concurrent_requests: int = Field(
        16,
        ge=1,
        le=1024,
        description="Requests in flight per connection; more get -32803.",
        json_schema_extra={"trust": "user"},
    )
    max_messages_per_second: float = Field(
        40.0,
        gt=0,
        le=10000,
        description="Messages read per connection per second (burst 2x); past it reading pauses.",
        json_schema_extra={"trust": "user"},
    )
    idle_timeout_s: float = Field(
        3600.0,
        gt=0,
        description="A connection silent this long is closed.",
        json_schema_extra={"trust": "user"},
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Time to send a message header (slowloris guard).",
        json_schema_extra={"trust": "user"},
    )
    tls_handshake_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Time to finish the TLS handshake.",
        json_schema_extra={"trust": "user"},
    )
    auth_failures_per_minute: float = Field(
        5.0,
        gt=0,
        le=600,
        description="Failed logins allowed per peer address (burst 5).",
        json_schema_extra={"trust": "user"},
    )
    path_map: list[str] = Field(
        default_factory=list,
        description="EDITOR_PATH=SERVER_PATH pairs mapped in URIs both ways (like --path-map).",
        json_schema_extra={"trust": "user"},
    )


class PrivacySettings(Section):
    """What may leave this machine."""

    allow_remote: bool = Field(
        False,
        description="Allow sending code to remote (non-loopback) model servers.",
        json_schema_extra={"trust": "tighten", "stricter": "false"},
    )
    redact_secrets: bool = Field(
        True,
        description="Redact secret-looking strings from remote prompts.",
        json_schema_extra={"trust": "tighten", "stricter": "true"},
    )


# The indexer owns the list: files never indexed nor put in prompts.
DEFAULT_SECRET_GLOBS = list(INDEXER_SECRET_GLOBS)


class IndexSettings(Section):
    """The workspace index."""

    enabled: bool = Field(
        True,
        description="Index the workspace in the background.",
        json_schema_extra={"trust": "any"},
    )
    location: Literal["workspace", "cache"] = Field(
        "workspace",
        description="`workspace`: `.ouzel/index/`; `cache`: the user cache folder.",
        json_schema_extra={"trust": "user"},
    )
    max_file_bytes: int = Field(
        1_000_000,
        ge=1,
        description="Skip files larger than this many bytes.",
        json_schema_extra={"trust": "any"},
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Extra gitignore-style patterns to skip.",
        json_schema_extra={"trust": "extend"},
    )
    secret_globs: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SECRET_GLOBS),
        description="Files never indexed nor put in prompts (gitignore-style).",
        json_schema_extra={"trust": "extend"},
    )
    watch: bool = Field(
        True,
        description="Watch the workspace for changes on disk.",
        json_schema_extra={"trust": "any"},
    )
    watch_debounce_ms: int = Field(
        50,
        ge=0,
        le=5000,
        description="Debounce of file watching.",
        json_schema_extra={"trust": "any"},
    )


ContextSource = Literal["definitions", "bm25", "recent", "vector"]


def _all_context_sources() -> list[ContextSource]:
    return ["definitions", "bm25", "recent", "vector"]


class ContextSettings(Section):
    """Repository context packed into completion prompts."""

    enabled: bool = Field(
        True,
        description="Add repository context to completion prompts.",
        json_schema_extra={"trust": "any"},
    )
    budget_tokens: int = Field(
        384,
        ge=0,
        le=32768,
        description="Tokens of repository context in a completion prompt (counted exactly, "
        "with the model's tokenizer).",
        json_schema_extra={"trust": "any"},
    )
    sources: list[ContextSource] = Field(
        default_factory=_all_context_sources,
        description="Where context comes from: `definitions` (Jedi for Python, the index's "
        "symbols otherwise), `bm25` (full-text search of the index), `recent` (code you "
        "edited or viewed), `vector` (embeddings, when the index has them).",
        json_schema_extra={"trust": "any"},
    )
    jedi_timeout_ms: int = Field(
        30,
        ge=0,
        le=10000,
        description="How long a request waits for Jedi at the cursor; slower answers are "
        "kept for the next keystroke.",
        json_schema_extra={"trust": "any"},
    )
    recent_regions: int = Field(
        16,
        ge=0,
        le=64,
        description="Recently edited or viewed regions remembered.",
        json_schema_extra={"trust": "any"},
    )
    recent_region_lines: int = Field(
        32,
        ge=4,
        le=256,
        description="Lines in one remembered region.",
        json_schema_extra={"trust": "any"},
    )


class ChatSettings(Section):
    """Chat and AI code actions."""

    max_tokens: int = Field(
        768,
        ge=16,
        le=32768,
        description="Most tokens of one chat answer or code-action reply.",
        json_schema_extra={"trust": "any"},
    )
    temperature: float = Field(
        0.2,
        ge=0.0,
        le=2.0,
        description="Sampling temperature of chat answers (code actions use 0).",
        json_schema_extra={"trust": "any"},
    )
    context_chars: int = Field(
        6000,
        ge=0,
        le=200000,
        description="Characters of workspace context (selection, open files, index hits, "
        "definitions) in one chat prompt.",
        json_schema_extra={"trust": "any"},
    )
    rules_max_chars: int = Field(
        4000,
        ge=0,
        le=100000,
        description="Characters read from each project rules file (AGENTS.md, .cursorrules, "
        "…); four times this in all.",
        json_schema_extra={"trust": "any"},
    )
    history_turns: int = Field(
        6,
        ge=0,
        le=100,
        description="Earlier turns of the conversation sent with a new message.",
        json_schema_extra={"trust": "any"},
    )
    recall_turns: int = Field(
        2,
        ge=0,
        le=20,
        description="Relevant past turns of other conversations recalled into the prompt.",
        json_schema_extra={"trust": "any"},
    )


class AgentSettings(Section):
    """The agent (multi-file edits with tools). Writes and commands are always confirmed."""

    run_command: bool = Field(
        False,
        description="Let the agent propose shell commands (each one is confirmed with its exact "
        "argv and cwd; under bubblewrap when installed). Only your own config can turn it on.",
        json_schema_extra={"trust": "user"},
    )
    require_sandbox: bool = Field(
        False,
        description="Refuse commands when bubblewrap (`bwrap`) is not available instead of "
        "running them unsandboxed after saying so.",
        json_schema_extra={"trust": "tighten", "stricter": "true"},
    )
    command_timeout_s: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="Kill a command after this long.",
        json_schema_extra={"trust": "tighten", "stricter": "lower"},
    )
    command_output_bytes: int = Field(
        32000,
        ge=1000,
        le=10_000_000,
        description="Output of a command kept for the model (the rest is dropped).",
        json_schema_extra={"trust": "tighten", "stricter": "lower"},
    )
    max_steps: int = Field(
        30,
        ge=1,
        le=500,
        description="Model calls in one agent turn.",
        json_schema_extra={"trust": "any"},
    )
    max_tokens: int = Field(
        200_000,
        ge=1000,
        le=10_000_000,
        description="Tokens (prompt and answer, all steps) one agent turn may use.",
        json_schema_extra={"trust": "any"},
    )
    max_wall_s: float = Field(
        900.0,
        gt=0,
        le=86400,
        description="Wall time of one agent turn.",
        json_schema_extra={"trust": "any"},
    )
    tools: list[str] = Field(
        default_factory=list,
        description='Offer the model only these tools (e.g. `["read_file", "propose_edit"]` '
        "for a small model); empty: every tool. Listing `run_command` does not turn commands on.",
        json_schema_extra={"trust": "user"},
    )
    protected: list[str] = Field(
        default_factory=list,
        description="More files (gitignore-style) whose writes always need a confirmation "
        "naming the risk, on top of the built-in list (`.vscode/`, `.git/`, manifests, …).",
        json_schema_extra={"trust": "extend"},
    )


class Settings(Section):
    """All of ouzel's settings."""

    log_level: LogLevel = Field(
        "info",
        description="Level of `window/logMessage` and the log file.",
        json_schema_extra={"trust": "any"},
    )
    completion: CompletionSettings = Field(default_factory=CompletionSettings)
    models: dict[str, ModelProfile] = Field(
        default_factory=_default_models,
        description="Model profiles by name; `local` is the default local model (see "
        "`model_path`) unless redefined.",
    )
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    team_server: TeamServerSettings = Field(default_factory=TeamServerSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    telemetry: bool = Field(
        True,
        description="Record shown/accepted suggestions locally (never sent anywhere).",
        json_schema_extra={"trust": "any"},
    )


@dataclass
class LoadedSettings:
    settings: Settings
    problems: list[str] = field(default_factory=list)


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ouzel" / "config.toml"


def workspace_config_path(root: Path) -> Path:
    return root / ".ouzel" / "config.toml"


def read_toml(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The file's table, or ({}, [problem]) when it is missing-but-fine or unreadable."""
    if not path.is_file():
        return {}, []
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle), []
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return {}, [f"{path}: cannot read settings ({exc}); the file is ignored"]


def merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base` (tables merge, other values replace)."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def load_settings(*layers: Mapping[str, Any] | None, origin: str = "settings") -> LoadedSettings:
    """Validate the merged layers, dropping invalid values one by one."""
    return load_named_layers([(origin, layer or {}) for layer in layers])


def load_named_layers(layers: list[tuple[str, Mapping[str, Any]]]) -> LoadedSettings:
    """Clean each layer on its own (so a problem names its source), then merge them."""
    merged: dict[str, Any] = {}
    problems: list[str] = []
    for origin, layer in layers:
        cleaned, layer_problems = _drop_invalid(_snake_case_keys(layer, Settings), origin)
        problems += layer_problems
        merged = merge(merged, cleaned)
    final, merge_problems = _drop_invalid(merged, "merged settings")
    return LoadedSettings(Settings.model_validate(final), problems + merge_problems)


def _drop_invalid(tree: dict[str, Any], origin: str) -> tuple[dict[str, Any], list[str]]:
    tree = copy.deepcopy(dict(tree))
    problems: list[str] = []
    for _ in range(200):  # each round removes at least one invalid value
        try:
            Settings.model_validate(tree)
            return tree, problems
        except ValidationError as exc:
            removed_any = False
            for error in exc.errors():
                location = tuple(error["loc"])
                if not _remove_path(tree, location):
                    continue
                removed_any = True
                name = ".".join(str(part) for part in location)
                problems.append(
                    f"{origin}: `{name}` is invalid ({error['msg']}; got {error.get('input')!r}); "
                    f"using {_describe_default(location)}"
                )
            if not removed_any:
                break
    return {}, [*problems, f"{origin}: could not be repaired; all of it is ignored"]


def _snake_case_keys(value: Any, annotation: Any) -> Any:
    """Accept camelCase setting names from editors (VS Code settings use `debounceMs`).

    Only names of settings change: keys of free-form tables (profile names under `models`,
    HTTP header names) are the user's own and stay as written.
    """
    if not isinstance(value, Mapping):
        return value
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        result: dict[str, Any] = {}
        for key, item in value.items():
            name = snake(str(key))
            if name not in annotation.model_fields:
                name = str(key)  # unknown: validation reports it under the name given
            field_info = annotation.model_fields.get(name)
            result[name] = _snake_case_keys(item, field_info.annotation) if field_info else item
        return result
    if get_origin(annotation) is dict:
        item_type = get_args(annotation)[1]
        return {key: _snake_case_keys(item, item_type) for key, item in value.items()}
    for option in get_args(annotation):  # Optional[Model] and other unions
        if isinstance(option, type) and issubclass(option, BaseModel):
            return _snake_case_keys(value, option)
    return value


def _remove_path(tree: dict[str, Any], location: tuple[Any, ...]) -> bool:
    """Delete the deepest existing key on `location`; True when something was removed."""
    node: Any = tree
    parents: list[tuple[Any, Any]] = []
    for part in location:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            parents.append((node, part))
            node = node[part]
        else:
            break
    if not parents:
        return False
    container, key = parents[-1]
    # A bad item inside a list or model-typed dict drops the whole value: keeping half a list
    # would surprise more than the default does.
    if isinstance(container, list) and len(parents) >= 2:
        container, key = parents[-2]
    del container[key]
    return True


def _describe_default(location: tuple[Any, ...]) -> str:
    node: Any = Settings()
    for part in location:
        if isinstance(node, BaseModel) and isinstance(part, str) and hasattr(node, part):
            node = getattr(node, part)
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return "the default"
    if isinstance(node, BaseModel):
        return "the default"
    return f"the default {node!r}"


def load_for_workspace(
    root: Path | None,
    init_options: Mapping[str, Any] | None = None,
    client_config: Mapping[str, Any] | None = None,
) -> LoadedSettings:
    """All sources in order for one workspace root (None: no workspace)."""
    problems: list[str] = []
    user_path = user_config_path()
    user, user_problems = read_toml(user_path)
    problems += user_problems
    layers: list[tuple[str, Mapping[str, Any]]] = [(str(user_path), user)]
    if root is not None:
        workspace_path = workspace_config_path(root)
        workspace, ws_problems = read_toml(workspace_path)
        below = load_named_layers(list(layers)).settings
        # The built-in profiles exist even when the user's `models` table leaves them out
        # (the router adds `local` back), so a workspace may tune them.
        for name, profile in _default_models().items():
            below.models.setdefault(name, profile)
        workspace, refused = filter_workspace_layer(workspace, Settings, below, str(workspace_path))
        problems += ws_problems + refused
        layers.append((str(workspace_path), workspace))
    layers.append(("initializationOptions", init_options or {}))
    layers.append(("editor settings", client_config or {}))
    loaded = load_named_layers(layers)
    loaded.problems[:0] = problems
    return loaded
