"""The fenced code blocks of the language guide (``docs/guide/*.md``) and how each one
is executed by ``test_guide.py``.

A block is preceded (directly, on the lines before its fence) by optional marks:

- ``<!-- no-run -->``: not executed (counted; they must stay rare);
- ``<!-- file: NAME -->``: an ``fpl`` block written to ``NAME`` in the page's folder (so a
  later block can ``import "NAME"``) besides being checked;
- ``<!-- expect-error: E0xxx -->``: the block must fail with that diagnostic code.

How blocks run (each page in order, in its own temporary folder holding a copy of
``examples/``):

- ``fpl``: written to a file and checked as ``fpl check`` does; when the next block of
  the page is ``json``, that is its data: the model is bound to it and run briefly (NUTS
  with one short chain where it has params, a few optimizer steps where it has only
  weights);
- ``python``: executed in a fresh namespace;
- ``bash`` / ``console``: every command line must be an ``fpl`` command (``$ `` prompts
  and ``\\`` continuations allowed; in ``console`` blocks other lines are output); each
  runs through ``fpl.runtime.cli.main`` and must exit 0;
- ``json`` not following an ``fpl`` block: must parse.

Any other language must be marked ``no-run``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide"
RUNNABLE = ("fpl", "python", "bash", "console", "json")
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
MARK = re.compile(r"<!--\s*([\w-]+)(?::\s*(.*?))?\s*-->")
#: CLI subcommands and API calls that run inference (slow: JAX compiles)
HEAVY_COMMANDS = {"sample", "optimize", "laplace", "pathfinder", "vi", "predict", "diagnose"}
HEAVY_PYTHON = re.compile(
    r"\.(sample|optimize|laplace|pathfinder|vi|predict|diagnose|generate|log_density|bind)\("
)


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    body: str
    marks: tuple[tuple[str, str], ...]
    data: str | None = None  # an fpl block's data (the json block after it)
    is_data: bool = False  # a json block that is the data of the fpl block before it

    @property
    def where(self) -> str:
        return f"docs/guide/{self.page}:{self.line}"

    def mark(self, name: str) -> str | None:
        for key, value in self.marks:
            if key == name:
                return value or ""
        return None

    @property
    def runs(self) -> bool:
        return self.mark("no-run") is None

    @property
    def heavy(self) -> bool:
        """Whether running it compiles and runs inference (seconds to tens of seconds)."""
        if not self.runs:
            return False
        if self.lang == "fpl":
            return self.data is not None
        if self.lang == "python":
            return bool(HEAVY_PYTHON.search(self.body))
        if self.lang in ("bash", "console"):
            return any(c[1:2] and c[1] in HEAVY_COMMANDS for c in commands(self))
        return False


def pages() -> list[Path]:
    return sorted(GUIDE.glob("*.md"))


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    out: list[Block] = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").split("\n")
        marks = []
        while before and MARK.fullmatch(before[-1].strip()):
            key, value = MARK.fullmatch(before.pop().strip()).groups()
            marks.append((key, value or ""))
        line = text.count("\n", 0, m.start()) + 1
        out.append(Block(path.name, line, m.group(1), m.group(2), tuple(marks)))
    # pair each fpl block with a json block right after it (its data)
    paired = []
    for i, b in enumerate(out):
        nxt = out[i + 1] if i + 1 < len(out) else None
        prev = out[i - 1] if i > 0 else None
        if b.lang == "fpl" and b.runs and nxt is not None and nxt.lang == "json" and nxt.runs:
            b = Block(b.page, b.line, b.lang, b.body, b.marks, data=nxt.body)
        if b.lang == "json" and prev is not None and prev.lang == "fpl" and prev.runs:
            b = Block(b.page, b.line, b.lang, b.body, b.marks, is_data=True)
        paired.append(b)
    return paired


def commands(block: Block) -> list[list[str]]:
    """The command lines of a bash/console block, split into words."""
    lines, out, pending = block.body.splitlines(), [], ""
    for raw in lines:
        line = raw.rstrip()
        if block.lang == "console" and not pending:
            if not line.startswith("$ "):
                continue  # output
            line = line[2:]
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(shlex.split(line, comments=True))
    return out
