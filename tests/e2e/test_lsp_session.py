"""A real `ouzel serve` over stdio, driven by pytest-lsp with recorded client capabilities."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from rpc import server_env

pytestmark = pytest.mark.e2e

CLIENTS = ["neovim@v0.11.0", "visual-studio-code"]


@pytest_lsp.fixture(
    params=CLIENTS,
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "ouzel.server.cli", "serve"],
        server_env=server_env(Path(__file__).parent / ".." / ".." / "build" / "e2e-home"),
    ),
)
async def client(request: pytest.FixtureRequest, lsp_client: LanguageClient, tmp_path: Path):
    tmp_path.joinpath("main.py").write_text("def f():\n    return 1\n")
    lsp_client.set_configuration({"ouzel": {"completion": {"debounce_ms": 5}}})
    params = types.InitializeParams(
        capabilities=client_capabilities(request.param),
        root_uri=tmp_path.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=tmp_path.as_uri(), name="ws")],
    )
    lsp_client.initialize_result = await lsp_client.initialize_session(params)  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_initialize_negotiates_encoding_and_sync(client: LanguageClient) -> None:
    result: types.InitializeResult = client.initialize_result  # type: ignore[attr-defined]
    caps = result.capabilities
    offered = (
        client.capabilities.general.position_encodings if client.capabilities.general else None
    )
    expected = (
        types.PositionEncodingKind.Utf8
        if offered and "utf-8" in offered
        else types.PositionEncodingKind.Utf16
    )
    assert caps.position_encoding == expected
    sync = caps.text_document_sync
    assert isinstance(sync, types.TextDocumentSyncOptions)
    assert sync.change == types.TextDocumentSyncKind.Incremental
    assert result.server_info is not None and result.server_info.name == "ouzel"


async def test_status_reflects_documents_and_settings(
    client: LanguageClient, tmp_path: Path
) -> None:
    uri = tmp_path.joinpath("main.py").as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=1, text="x = 1\n")
        )
    )
    status = await client.protocol.send_request_async("ouzel/status", {})
    # pytest-lsp's client turns JSON objects of custom methods into namedtuples
    assert status.openDocuments == 1
    assert list(status.workspaceFolders) == [str(tmp_path)]


async def test_unknown_method_is_method_not_found(client: LanguageClient) -> None:
    with pytest.raises(Exception, match="Method Not Found"):
        await client.protocol.send_request_async("ouzel/noSuchThing", {})
