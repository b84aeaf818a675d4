"""`ouzel gpu serve [--dry-run]`: run vLLM on the GPU box with the flags ouzel expects.

The profile (default `remote`, the one editors use to reach the box) supplies the model,
served name, port, API key source, context length and tool-call parser; flags override.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ouzel.server.cli import Command, register


def _arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="gpu_command", metavar="SUBCOMMAND")
    serve = sub.add_parser(
        "serve",
        help="run `vllm serve` for a model profile (loopback and API key by default)",
        description="Run `vllm serve` for a model profile: loopback only and with an API key "
        "unless told otherwise. Arguments after `--` go to vLLM as they are.",
    )
    serve.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    serve.add_argument("--profile", default="remote", help="model profile (default: remote)")
    serve.add_argument("--model", metavar="WEIGHTS", help="Hugging Face id or folder to load")
    serve.add_argument("--served-model-name", metavar="NAME", help="model name clients use")
    serve.add_argument("--host", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: from base_url, else 8000)")
    serve.add_argument("--max-model-len", type=int, metavar="TOKENS", help="context length")
    serve.add_argument("--tool-call-parser", metavar="NAME", help="vLLM tool-call parser, or none")
    serve.add_argument(
        "--data-parallel-size",
        type=int,
        default=1,
        metavar="N",
        help="vLLM engine replicas on this box (one per GPU or GPU group); default 1",
    )
    serve.add_argument(
        "--tensor-parallel-size", type=int, default=1, metavar="N", help="GPUs per replica"
    )
    keys = serve.add_mutually_exclusive_group()
    keys.add_argument("--api-key-env", metavar="VAR", help="environment variable with the key")
    keys.add_argument("--api-key-file", metavar="FILE", help="file with the key")
    keys.add_argument(
        "--generate-key", metavar="FILE", help="use the key in FILE, creating it (mode 600)"
    )
    serve.add_argument("vllm_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def _run(args: argparse.Namespace) -> int:
    from ouzel.inference.gpu import GpuServeError

    if args.gpu_command != "serve":
        print("usage: ouzel gpu serve [--dry-run] [options] [-- vLLM arguments]", file=sys.stderr)
        return 2
    try:
        return _serve(args)
    except GpuServeError as exc:
        print(f"ouzel gpu serve: {exc}", file=sys.stderr)
        return 1


def _serve(args: argparse.Namespace) -> int:
    from ouzel.inference.gpu import (
        DEFAULT_PORT,
        VLLM_KEY_VARIABLE,
        GpuServeError,
        KeySource,
        VllmOptions,
        build_vllm_command,
        find_vllm,
        generate_key,
        port_of,
        tool_call_parser_for,
    )
    from ouzel.server.settings import ModelProfile, load_for_workspace

    loaded = load_for_workspace(None)
    for problem in loaded.problems:
        print(f"ouzel: {problem}", file=sys.stderr)
    profile = loaded.settings.models.get(args.profile) or ModelProfile(backend="openai")
    weights = args.model or profile.weights or profile.model
    if not weights:
        raise GpuServeError(
            f"which model? pass --model (a Hugging Face id or a folder), or set `weights` or "
            f"`model` in the profile '{args.profile}'"
        )
    served = args.served_model_name or profile.model or Path(weights.rstrip("/")).name
    parser_setting = args.tool_call_parser or profile.tool_call_parser
    parser = (
        None
        if parser_setting == "none"
        else tool_call_parser_for(weights)
        if parser_setting == "auto"
        else parser_setting
    )
    if args.generate_key:
        key: KeySource | None = generate_key(Path(args.generate_key))
    elif args.api_key_env or args.api_key_file:
        key = KeySource(env=args.api_key_env, file=args.api_key_file)
    elif profile.api_key_env or profile.api_key_file:
        key = KeySource(env=profile.api_key_env, file=profile.api_key_file)
    else:
        key = None
    extra = [a for a in args.vllm_args if a != "--"]
    launch = build_vllm_command(
        VllmOptions(
            weights=weights,
            served_model_name=served,
            host=args.host or "127.0.0.1",
            port=args.port or port_of(profile.base_url) or DEFAULT_PORT,
            max_model_len=args.max_model_len or profile.context_length,
            tool_call_parser=parser,
            key=key,
            data_parallel_size=args.data_parallel_size,
            tensor_parallel_size=args.tensor_parallel_size,
            extra=tuple(extra),
        )
    )
    for warning in launch.warnings:
        print(f"ouzel: warning: {warning}", file=sys.stderr)
    if args.dry_run:
        print(launch.shell_line())
        print(
            f"# the key travels in {VLLM_KEY_VARIABLE} (not --api-key) so `ps` never shows it",
            file=sys.stderr,
        )
        return 0
    executable = find_vllm()
    env = {**os.environ, VLLM_KEY_VARIABLE: launch.key.read()}
    print(f"ouzel: {launch.shell_line()}", file=sys.stderr, flush=True)
    os.execve(executable, launch.argv, env)
    return 0  # pragma: no cover - execve does not return


register(Command("gpu", "run vLLM on a GPU box (`ouzel gpu serve`)", _arguments, _run))
