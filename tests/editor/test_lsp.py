"""The language server (``python -m fpl.runtime.lsp``), driven by a real LSP client
(pygls's ``LanguageClient``) over stdio in a subprocess: diagnostics on open and change
are ``fpl check``'s, with their spans as ranges; hover shows registry documentation."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from fpl.runtime import lsp
from fpl.runtime.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]

BROKEN = """\
data N: int
data y: real[N]
param mu ~ normal(0, 1)
y ~ nromal(mu, 1)
"""


def test_diagnostics_are_fpl_checks(tmp_path, capsys):
    """Same code and location as the CLI's JSON output, converted to LSP ranges."""
    path = tmp_path / "m.fpl"
    path.write_text(BROKEN)
    assert cli_main(["--error-format", "json", "check", str(path)]) == 1
    import json

    cli = json.loads(capsys.readouterr().err)[0]
    (p,) = lsp.diagnostics(BROKEN, path)
    assert p.code == cli["code"] == "E0103"
    loc = cli["location"]
    assert (p.line, p.col) == (loc["line"] - 1, loc["col"] - 1) == (3, 4)
    assert (p.end_line, p.end_col) == (loc["end_line"] - 1, loc["end_col"])
    assert BROKEN.splitlines()[p.line][p.col : p.end_col] == "nromal"
    assert "did you mean `normal`" in p.message


def test_clean_model_has_no_diagnostics():
    path = ROOT / "examples" / "eight_schools.fpl"
    assert lsp.diagnostics(path.read_text(), path) == []


def test_error_in_an_import_points_at_the_first_line(tmp_path):
    (tmp_path / "lib.fpl").write_text("fn f(x) = x +\n")
    (p,) = lsp.diagnostics('import "lib.fpl"\n', tmp_path / "m.fpl")
    assert (p.line, p.col) == (0, 0) and "lib.fpl:" in p.message


def test_hover_texts_come_from_the_registries():
    from fpl.stdlib.registry import registry

    reg = registry()
    normal = lsp.hover_markdown("normal")
    assert "normal(mu, sigma)" in normal and reg.distributions["normal"].doc.split()[0] in normal
    assert "normal_lpdf(y | mu, sigma)" in lsp.hover_markdown("normal_lpdf")
    assert "log_sum_exp" in lsp.hover_markdown("log_sum_exp")
    newton = lsp.hover_markdown("newton")
    assert "with newton(" in newton and "tol=" in newton and "`root`" in newton
    assert lsp.hover_markdown("mu") is None
    assert lsp.word_at("y ~ normal(mu, 1)", 6) == "normal"


async def _session(uri: str) -> dict:
    """Open, change and hover one document through a real client; returns what the
    server sent."""
    client = LanguageClient("fpl-test", "0")
    published: list[types.PublishDiagnosticsParams] = []
    arrived = asyncio.Event()

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
        published.append(params)
        arrived.set()

    async def next_diagnostics() -> types.PublishDiagnosticsParams:
        await asyncio.wait_for(arrived.wait(), 60)
        arrived.clear()
        return published[-1]

    await client.start_io(sys.executable, "-m", "fpl.runtime.lsp")
    try:
        await asyncio.wait_for(
            client.initialize_async(
                types.InitializeParams(
                    capabilities=types.ClientCapabilities(), process_id=None, root_uri=None
                )
            ),
            60,
        )
        client.initialized(types.InitializedParams())
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="fpl", version=1, text=BROKEN
                )
            )
        )
        opened = await next_diagnostics()
        fixed = BROKEN.replace("nromal", "normal")
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=fixed)],
            )
        )
        changed = await next_diagnostics()
        hover = await client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=2, character=13),  # on `normal`
            )
        )
        nothing = await client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=2, character=7),  # on `mu`
            )
        )
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        await client.stop()
    return {"opened": opened, "changed": changed, "hover": hover, "nothing": nothing}


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the subprocess's pipes at stop
def test_language_server_session(tmp_path):
    uri = (tmp_path / "m.fpl").as_uri()
    got = asyncio.run(_session(uri))
    (d,) = got["opened"].diagnostics
    assert d.code == "E0103" and d.source == "fpl"
    assert d.severity == types.DiagnosticSeverity.Error
    assert (d.range.start.line, d.range.start.character) == (3, 4)
    assert (d.range.end.line, d.range.end.character) == (3, 10)
    assert len(got["changed"].diagnostics) == 0 and got["changed"].version == 2
    assert "normal(mu, sigma)" in got["hover"].contents.value
    assert got["nothing"] is None
