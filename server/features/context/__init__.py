"""Repository context for completions: definitions, search hits and recent code, packed.

LSP-free: `engine.ContextEngine` takes a `model.ContextRequest` (a document snapshot and a
cursor offset) and returns a `model.ContextResult`. `service.py` binds it to a session.
"""
