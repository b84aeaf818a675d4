"""The agent: multi-file edits with tools, LSP-free.

`sandbox` (paths, protected files, descriptor-safe reads and atomic writes), `matcher`
(old text → new text), `confirm` (the `Confirmer` protocol the editor layer implements),
`checkpoint` (undo a turn), `commands` (run_command: destructive detection, bubblewrap),
`tools` (the tools and their schemas), `loop` (the tool loop with budgets and cancel).
"""
