"""Models, prompts and backends: llama.cpp in process, OpenAI-compatible servers, routing.

No LSP types here (see docs/ARCHITECTURE.md).
"""
