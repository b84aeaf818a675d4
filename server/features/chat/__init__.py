"""Chat (LSP-free): the conversation store, project rules, workspace context and prompts."""
