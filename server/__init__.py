"""The language server: the only package that knows LSP (pygls, lsprotocol, JSON-RPC)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ouzel")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
