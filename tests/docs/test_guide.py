"""Every code block of the language guide runs (see ``guide_blocks.py`` for the rules),
the site builds with ``mkdocs build --strict``, and the links resolve.

Cost: checking every ``fpl`` block and the pages without inference take seconds; a page
with a block that runs inference (NUTS, an optimizer: JAX compiles each model, tens of
seconds on a loaded machine) is marked slow.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from guide_blocks import GUIDE, ROOT, RUNNABLE, Block, blocks, commands, pages

from fpl.dsl.diagnostics import FplError

#: Blocks marked no-run, at most (raise it only for a block that truly cannot run).
MAX_NO_RUN = 8
#: Inference in the docs runs short: one chain, this many warmup iterations and draws.
SHORT = {"chains": 1, "warmup": 100, "draws": 100, "seed": 1, "progress": False}


def _check(path: Path) -> None:
    from fpl.compiler import check, front_end

    check(front_end(path.read_text(), str(path), path), None)


def run_fpl(block: Block, folder: Path, index: int) -> None:
    name = block.mark("file") or f"block{index}.fpl"
    path = folder / name
    path.write_text(block.body)
    expected = block.mark("expect-error")
    if expected is not None:
        with pytest.raises(FplError) as info:
            _check(path)
        assert info.value.code == expected, f"{block.where}: {info.value.render()}"
        return
    try:
        _check(path)
    except FplError as exc:
        raise AssertionError(f"{block.where}: the block does not check\n{exc.render()}") from None
    if block.data is not None:
        import fpl

        data = json.loads(block.data)
        model = fpl.load(str(path))
        if model.param_names:
            fit = model.sample(data, **SHORT)
            assert fit.num_draws == SHORT["draws"], block.where
        else:
            res = model.optimize(data, steps=5, seed=1, progress=False)
            assert len(res.trace) == 5, block.where


def run_python(block: Block) -> None:
    namespace = {"__name__": "__docs__"}
    code = compile(block.body, block.where, "exec")
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code, namespace)


def run_shell(block: Block) -> None:
    from fpl.runtime.cli import main

    lines = commands(block)
    assert lines, f"{block.where}: no command"
    for words in lines:
        assert words[0] == "fpl", (
            f"{block.where}: `{' '.join(words)}` is not an fpl command (mark the block no-run)"
        )
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(words[1:])
        assert rc == 0, f"{block.where}: `{' '.join(words)}` exited {rc}\n{err.getvalue()}"


def run_page(page: Path, folder: Path) -> None:
    shutil.copytree(ROOT / "examples", folder / "examples")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for i, block in enumerate(blocks(page)):
            if not block.runs:
                continue
            if block.lang == "fpl":
                run_fpl(block, folder, i)
            elif block.lang == "python":
                run_python(block)
            elif block.lang in ("bash", "console"):
                run_shell(block)
            elif block.lang == "json":
                json.loads(block.body)
    finally:
        os.chdir(cwd)


def _page_params():
    out = []
    for page in pages():
        heavy = any(b.heavy for b in blocks(page))
        marks = [pytest.mark.slow] if heavy else []
        out.append(pytest.param(page, id=page.stem, marks=marks))
    return out


@pytest.mark.parametrize("page", _page_params())
def test_page_runs(page, tmp_path):
    run_page(page, tmp_path)


def test_every_fpl_block_checks(tmp_path):
    """Fast, on every page: each fpl block parses and type-checks (or fails as marked)."""
    n = 0
    for page in pages():
        folder = tmp_path / page.stem
        folder.mkdir()
        for i, block in enumerate(blocks(page)):
            if block.lang == "fpl" and block.runs:
                run_fpl(Block(block.page, block.line, "fpl", block.body, block.marks), folder, i)
                n += 1
    assert n >= 25  # the reader found the guide's models (many small ones)


def test_blocks_are_runnable_or_marked():
    all_blocks = [b for page in pages() for b in blocks(page)]
    unknown = [b.where for b in all_blocks if b.runs and b.lang not in RUNNABLE]
    assert not unknown, f"blocks in a language the tests cannot run, not marked no-run: {unknown}"
    no_run = [b.where for b in all_blocks if not b.runs]
    assert len(no_run) <= MAX_NO_RUN, f"too many no-run blocks: {no_run}"
    assert sum(b.runs for b in all_blocks) >= 45


def test_block_reader_sees_marks_and_data(tmp_path):
    """The reader the tests rely on: marks, data pairing and command splitting."""
    page = tmp_path / "p.md"
    page.write_text(
        "text\n<!-- no-run -->\n```toml\na = 1\n```\n"
        "<!-- expect-error: E0103 -->\n```fpl\nparam a ~ nromal(0, 1)\n```\n"
        "```fpl\nparam a ~ normal(0, 1)\n```\nwith data\n```json\n{}\n```\n"
        "```console\n$ fpl check \\\n    m.fpl\nm.fpl: ok\n```\n"
    )
    b = blocks(page)
    assert [x.lang for x in b] == ["toml", "fpl", "fpl", "json", "console"]
    assert not b[0].runs and b[1].mark("expect-error") == "E0103"
    assert b[1].data is None and b[2].data == "{}\n" and b[3].is_data and b[2].heavy
    assert commands(b[4]) == [["fpl", "check", "m.fpl"]]


# ---- the site and its links ---------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")


def _local_links(path: Path) -> list[str]:
    return [
        t.split("#")[0]
        for t in LINK.findall(path.read_text())
        if not re.match(r"[a-z]+:", t) and not t.startswith("#")
    ]


@pytest.mark.parametrize(
    "path",
    [ROOT / "README.md", ROOT / "examples" / "README.md", *pages()],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_links_resolve(path):
    missing = [t for t in _local_links(path) if not (path.parent / t).exists()]
    if path.parent == GUIDE:  # generated pages exist only in the built site
        missing = [t for t in missing if t not in ("cli.md", "reference.md", "architecture.md")]
    assert not missing, f"{path.relative_to(ROOT)}: links to missing files {missing}"


def test_docs_do_not_point_to_the_design_sketch():
    """The guide grew from ../shared/design/LANGUAGE.md, which is not in a clone."""
    for path in [*pages(), ROOT / "examples" / "README.md", ROOT / "README.md"]:
        assert "LANGUAGE.md" not in path.read_text(), path


def test_mkdocs_build_strict(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "docs" / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    site = tmp_path / "site"
    for page in ["tutorial", "language", "implicit", "learning", "cli", "reference"]:
        assert (site / page / "index.html").exists(), page
    cli = (site / "cli" / "index.html").read_text()
    assert "fpl sample" in cli and "--warmup" in cli
    language = (site / "language" / "index.html").read_text()
    assert 'class="k' in language  # FPL blocks highlighted by the Pygments lexer
