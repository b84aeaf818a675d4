"""LSP-free logic behind the handlers: completion pipeline, context engine, telemetry."""
