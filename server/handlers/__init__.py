"""LSP handlers, one module per area. Each is thin: unpack params, call plain code, convert."""
