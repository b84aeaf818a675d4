"""The workspace index: files, syntax trees, chunks, symbols and the LanceDB store.

No LSP types here (see docs/ARCHITECTURE.md).
"""
