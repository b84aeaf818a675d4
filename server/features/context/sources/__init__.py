"""The context sources, one module each: what the engine asks for candidates.

`definitions` (where the names near the cursor are defined), `search` (BM25 over the
index, and one hop from its hits to definitions), `vector` (embedding neighbours) and
`recent` (code the user worked on). `common` holds what they share: the index protocol
(`Retrieval`) and `CodeReader`, through which every source reads code.
"""
