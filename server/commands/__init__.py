"""`ouzel` subcommands beyond `serve`; each module calls `ouzel.server.cli.register`."""
