"""Text -> AST.  Two routes give the same AST: the hand-written parser of
``dsl/fastparse.py`` (the default, ~10x faster), and, for every text it does not accept,
a LALR lark parser of ``dsl/grammar.lark``, then the tree's callbacks applied bottom-up
without recursion (so deeply nested programs cannot overflow the stack here).  Every
syntax error is lark's; ``FPL_PARSER=lark`` (or ``parse_with_lark``) takes the lark
route alone."""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import lark
from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from fpl.dsl import ast, fastparse, stan_habits
from fpl.dsl.diagnostics import FplError, error
from fpl.dsl.lexer import CONTINUING, KEYWORDS, MAX_DEPTH, MAX_INT, RESERVED, SOFT
from fpl.dsl.spans import Source, Span

# MAX_DEPTH (E0107), MAX_INT (E0109), the keywords and CONTINUING are defined in
# dsl/lexer.py, shared by the two routes.

_GRAMMAR = Path(__file__).with_name("grammar.lark")

# Human names for terminals in "expected ..." messages.
_TERMINAL_TEXT = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": 'a "string"',
    "_NL": "a newline",
    "$END": "the end of the file",
    "BASE_TYPE": "a type (`int`, `real`)",
    "STRUCT_TYPE": "a structured type",
}


class TooDeepError(Exception):
    """Raised by the postlexer at the first bracket nested deeper than ``MAX_DEPTH``."""

    def __init__(self, token: Token):
        super().__init__(token)
        self.token = token


#: binary operators by precedence level, a higher level binding tighter (grammar.lark:
#: ``||`` < ``&&`` < comparisons < ``+ -`` < ``* / % @ .* ./`` < prefix ``- + !`` < ``^``)
_LEVEL = {"||": 1, "&&": 2, "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "@": 5, ".*": 5, "./": 5}
_COMPARISON, _PREFIX, _POWER = 3, 6, 7
_COMPARISONS = frozenset(("==", "!=", "<", "<=", ">", ">="))
#: tokens that can end an operand: a ``-`` or ``+`` after one is binary, else prefix
_OPERAND_END = frozenset(("NAME", "INT", "FLOAT", "STRING", "RPAR", "RSQB", "QUOTE"))


class ChainDepth:
    """A lower bound on the expression's depth, counted token by token, so that an
    operator chain too deep for ``MAX_DEPTH`` (``1 + 1 + ...``, 170k terms) is refused
    at its 251st operator instead of after parsing all of it (which took 28 s).

    Per bracket group, one counter per precedence level: an operator of level p adds
    one to counter p and zeroes the counters of the levels above p; any other token
    but an operand, ``.`` and ``'`` (``=``, ``,``, ``?``, ``:``, keywords, braces, a
    statement's newline) zeroes them all.  Invariant (sound, not complete): operators
    of level p with no operator of a lower level, no bracket boundary and no other
    token between them are one chain of the grammar (left-nested for ``+``, ``*``,
    ``||``, ``&&``; nested for prefix operators; right-nested for ``^``), so the tree
    is at least counter-p levels deep; ``_check_depth`` stays the exact check."""

    def __init__(self):
        self.frames = [[0] * 8]

    def open(self):
        self.frames.append([0] * 8)

    def close(self):
        if len(self.frames) > 1:
            self.frames.pop()

    def reset(self, above: int = 0):
        counters = self.frames[-1]
        counters[above + 1 :] = [0] * (len(counters) - above - 1)

    def step(self, tok, previous) -> None:
        """Count ``tok`` (``previous``: the token before it); TooDeepError past the limit."""
        text = str(tok)
        if tok.type in ("NAME", "INT", "FLOAT", "STRING", "QUOTE", "DOT") and (
            text not in _KEYWORDS
        ):
            return
        binary = previous is not None and previous.type in _OPERAND_END
        if text in ("-", "+") and not binary or text == "!":
            level = _PREFIX
        elif text == "^":
            level = _POWER
        elif text in _LEVEL:
            level = _LEVEL[text]
        elif text in _COMPARISONS:
            self.reset(_COMPARISON)
            return
        else:
            self.reset()
            return
        self.reset(level)
        counters = self.frames[-1]
        counters[level] += 1
        if counters[level] > MAX_DEPTH:
            raise TooDeepError(tok)


class NewlineFilter:
    """Drop newline tokens inside parentheses and brackets, and after an operator that
    cannot end a statement (implicit line joining); refuse brackets nested, and
    operator chains (``ChainDepth``), deeper than ``MAX_DEPTH`` while lexing."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        previous = None
        chains = ChainDepth()
        for tok in stream:
            if tok.type in ("LPAR", "LSQB"):
                depth += 1
                if depth > MAX_DEPTH:  # refused while parsing, not after
                    raise TooDeepError(tok)
                chains.open()
            elif tok.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
                chains.close()
            elif tok.type == "_NL" and (depth > 0 or str(previous) in CONTINUING):
                continue
            else:
                chains.step(tok, previous)
            previous = tok
            yield tok


def _span(source: Source, meta_or_tok: Any) -> Span:
    if isinstance(meta_or_tok, Token):
        t: Any = meta_or_tok  # lark types its positions as optional; tokens always have them
        return Span(source, t.line, t.column, t.end_line, max(t.column, t.end_column - 1))
    m = meta_or_tok
    if getattr(m, "empty", True):
        return Span(source, 0, 0, 0, 0)
    return Span(source, m.line, m.column, m.end_line, max(m.column, m.end_column - 1))


class _Build:
    """Parse-tree callbacks -> AST nodes: one method per rule, called by :func:`_build`
    with the rule's ``meta`` (positions) and its children's values."""

    def __init__(self, source: Source):
        self.source = source

    def sp(self, meta) -> Span:
        return _span(self.source, meta)

    def declared(self, tok) -> str:
        """A name being declared: reserved words are refused (the contextual lexer
        would otherwise accept `let data = 1`)."""
        if str(tok) in _RESERVED:
            raise error(
                "E0101",
                f"`{tok}` is a reserved word and cannot be used as a name",
                _span(self.source, tok),
                help=f"rename it, e.g. `{tok}_`",
            )
        return str(tok)

    def _expr(self, node, *children):
        return node

    # ---- program and statements ----
    def start(self, meta, *stmts):
        return ast.Program(tuple(s for s in stmts if s is not None), self.sp(meta))

    def data_decl(self, meta, name, typ):
        return ast.DataDecl(self.declared(name), typ, self.sp(meta))

    def param_decl(self, meta, name, typ, prior):
        return ast.ParamDecl(self.declared(name), typ, prior, self.sp(meta))

    def weight_decl(self, meta, name, typ, init):
        return ast.WeightDecl(self.declared(name), typ, init, self.sp(meta))

    def let_stmt(self, meta, name, value):
        return ast.Let(self.declared(name), value, self.sp(meta))

    def block_let(self, meta, name, value):
        return ast.Let(self.declared(name), value, self.sp(meta))

    def out_stmt(self, meta, name, value):
        return ast.Out(self.declared(name), value, self.sp(meta))

    def tilde_stmt(self, meta, lhs, dist):
        return ast.Tilde(lhs, dist, self.sp(meta))

    def target_stmt(self, meta, value):
        return ast.Target(value, self.sp(meta))

    def loss_stmt(self, meta, value):
        return ast.Loss(value, self.sp(meta))

    def gen_tilde(self, meta, name, dist):
        return ast.GenTilde(self.declared(name), dist, self.sp(meta))

    def gen_let(self, meta, name, value):
        return ast.GenLet(self.declared(name), value, self.sp(meta))

    def fn_params(self, meta, *params):
        return tuple(params)

    def fn_param(self, meta, name, typ):
        return ast.FnParam(self.declared(name), typ, self.sp(meta))

    def fn_line(self, meta, name, params, returns, body):
        return ast.FnDef(self.declared(name), params or (), returns, (), body, self.sp(meta))

    def block(self, meta, *items):
        return (tuple(items[:-1]), items[-1])

    def fn_block(self, meta, name, params, returns, block):
        lets, result = block
        return ast.FnDef(self.declared(name), params or (), returns, lets, result, self.sp(meta))

    def import_stmt(self, meta, path):
        return ast.Import(str(path)[1:-1], self.sp(meta))

    def dist(self, meta, name, arglist):
        args, kwargs = arglist if arglist is not None else ((), ())
        func = ast.Name(str(name), _span(self.source, name))
        return ast.Call(func, args, kwargs, False, self.sp(meta))

    # ---- types ----
    def basic_type(self, meta, base, bounds, shape):
        return ast.TypeExpr(str(base), bounds or (), shape or (), self.sp(meta))

    def struct_type(self, meta, base, bounds, shape):
        return ast.TypeExpr(str(base), bounds or (), shape, self.sp(meta))

    def constraint(self, meta, *bounds):
        return tuple(bounds)

    def bound(self, meta, name, value):
        return ast.Keyword(str(name), value, self.sp(meta))

    def shape(self, meta, *dims):
        return tuple(dims)

    # ---- implicit forms ----
    def _implicit(self, kind: ast.ImplicitKind, meta, name, typ, body, opts, constraints=()):
        init = solver = None
        keywords = []
        for opt in opts:
            tag, value = opt
            if tag == "init":
                init = value
            elif tag == "with":
                solver = value
            else:
                keywords.append(value)
        node = ast.Implicit(
            kind, str(name), typ, body, init, solver, tuple(keywords), self.sp(meta), constraints
        )
        return self._expr(node, body, init)

    def fix(self, meta, name, typ, body, *opts):
        return self._implicit("fix", meta, name, typ, body, opts)

    def root(self, meta, name, typ, body, *opts):
        return self._implicit("root", meta, name, typ, body, opts)

    def argmin(self, meta, name, typ, body, *opts):
        return self._implicit("argmin", meta, name, typ, body, opts)

    def argmin_subject(self, meta, name, typ, body, constraints, *opts):
        return self._implicit("argmin", meta, name, typ, body, opts, constraints)

    def subject(self, meta, first, second, *constraints):
        if (str(first), str(second)) != ("subject", "to"):
            bad = first if str(first) != "subject" else second
            raise error(
                "E0101",
                f"unexpected `{bad}` after the objective of `argmin`",
                _span(self.source, bad),
                label="not expected here",
                help="constraints are written `subject to a == b, c >= d`; "
                "options are `init ...`, `with solver(...)` or `name=value`",
            )
        return tuple(constraints)

    def opt_init(self, meta, value):
        return ("init", value)

    def opt_solver(self, meta, name, arglist):
        args, kwargs = arglist if arglist is not None else ((), ())
        func = ast.Name(str(name), _span(self.source, name))
        return ("with", ast.Call(func, args, kwargs, False, self.sp(meta)))

    def opt_keyword(self, meta, name, value):
        return ("keyword", ast.Keyword(str(name), value, self.sp(meta)))

    # ---- expressions ----
    def cond(self, meta, test, then, orelse):
        return self._expr(ast.Cond(test, then, orelse, self.sp(meta)), test, then, orelse)

    def _binary(op: str) -> Callable[..., ast.Binary]:  # type: ignore[misc]  # noqa: N805
        # a factory used in the class body (so its first argument is not ``self``)
        def build(self: _Build, meta: Any, left: ast.Expr, right: ast.Expr) -> ast.Binary:
            return self._expr(ast.Binary(op, left, right, self.sp(meta)), left, right)

        return build

    or_ = _binary("or")
    and_ = _binary("and")
    eq = _binary("eq")
    ne = _binary("ne")
    lt = _binary("lt")
    le = _binary("le")
    gt = _binary("gt")
    ge = _binary("ge")
    add = _binary("add")
    sub = _binary("sub")
    mul = _binary("mul")
    div = _binary("div")
    mod = _binary("mod")
    matmul = _binary("matmul")
    pow = _binary("pow")

    def _unary(op: str) -> Callable[..., ast.Unary]:  # type: ignore[misc]  # noqa: N805
        def build(self: _Build, meta: Any, operand: ast.Expr) -> ast.Unary:
            return self._expr(ast.Unary(op, operand, self.sp(meta)), operand)

        return build

    neg = _unary("neg")
    pos = _unary("pos")
    not_ = _unary("not")
    transpose = _unary("transpose")

    def call(self, meta, func, callargs):
        args, kwargs, conditional = callargs if callargs is not None else ((), (), False)
        node = ast.Call(func, args, kwargs, conditional, self.sp(meta))
        return self._expr(node, func, *args, *(k.value for k in kwargs))

    def callargs(self, meta, arglist):
        return (*arglist, False)

    def conditional_args(self, meta, first, arglist):
        args, kwargs = arglist
        return ((first, *args), kwargs, True)

    def arglist(self, meta, *items):
        args = tuple(i for i in items if not isinstance(i, ast.Keyword))
        kwargs = tuple(i for i in items if isinstance(i, ast.Keyword))
        seen_kw = False
        for item in items:
            if isinstance(item, ast.Keyword):
                seen_kw = True
            elif seen_kw:
                raise error("E0101", "positional argument after a keyword argument", item.span)
        return (args, kwargs)

    def kwarg(self, meta, name, value):
        return ast.Keyword(str(name), value, self.sp(meta))

    def index(self, meta, target, *items):
        node = ast.Index(target, tuple(items), self.sp(meta))
        subs = [i for i in items if not isinstance(i, ast.Slice)]
        return self._expr(node, target, *subs)

    def index_single(self, meta, value):
        return value

    def index_slice(self, meta, lo, hi):
        return ast.Slice(lo, hi, self.sp(meta))

    def attr(self, meta, target, name):
        return self._expr(ast.Attr(target, str(name), self.sp(meta)), target)

    def array_lit(self, meta, *items):
        items = tuple(i for i in items if i is not None)
        return self._expr(ast.ArrayLit(items, self.sp(meta)), *items)

    def int_lit(self, meta, tok):
        digits = str(tok).lstrip("0") or "0"
        if len(digits) > len(str(MAX_INT)) or int(digits) > MAX_INT:
            raise error(
                "E0109",
                "integer literal out of range",
                self.sp(meta),
                label=f"larger than {MAX_INT} (2^63 - 1)",
                help="write a real literal (`1e30`) for a large real value",
            )
        return ast.Num(int(digits), True, self.sp(meta))

    def float_lit(self, meta, tok):
        return ast.Num(float(tok), False, self.sp(meta))

    def name(self, meta, tok):
        return ast.Name(str(tok), self.sp(meta))

    def soft_name(self, meta, tok):
        return ast.Name(str(tok), self.sp(meta))


#: the parser's options besides the postlexer; part of the table cache's key
_OPTIONS = {"parser": "lalr", "propagate_positions": True, "maybe_placeholders": True}


@functools.lru_cache(maxsize=1)
def _lark() -> lark.Lark:
    """The LALR parser, its tables read from the user's cache where a safe, current copy
    is there (building them takes ~1 s, loading them ~0.05 s), else built and cached."""
    text = _GRAMMAR.read_text()
    path = table_cache_path(text)
    if path is not None:
        loaded = _load_tables(path)
        if loaded is not None:
            return loaded
    parser = lark.Lark(text, postlex=NewlineFilter(), **_OPTIONS)
    if path is not None:
        _save_tables(parser, path)
    return parser


def cache_dir() -> Path | None:
    """FPL's cache directory: ``$FPL_CACHE_DIR`` or ``~/.cache/fpl``; None when
    ``FPL_CACHE_DIR`` is ``off`` (or empty, ``0``, ``none``)."""
    chosen = os.environ.get("FPL_CACHE_DIR")
    if chosen is not None and chosen.strip().lower() in ("", "off", "0", "none"):
        return None
    return Path(chosen or Path.home() / ".cache" / "fpl")


def table_cache_path(grammar: str) -> Path | None:
    """Where the parse tables of ``grammar`` are cached, or None where no safe place is.

    The file is named by a hash of everything the tables depend on (the grammar, the
    options, lark's and Python's versions), so a stale file is never read.  lark's tables
    are a pickle, and unpickling runs code: the directory (``<cache_dir>/lark``, made
    ``0700``) must belong to this user and be writable by nobody else, so no other user
    (nor a file planted in the working directory) can put a cache there.  Checked here
    and again for the file when it is read."""
    key = "\n".join(
        [grammar, repr(sorted(_OPTIONS.items())), lark.__version__, sys.version.split()[0]]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    base = cache_dir()
    if base is None:
        return None
    folder = base / "lark"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(folder.stat()):
            return None
    except OSError:
        return None
    return folder / f"grammar-{digest}.pickle"


def _private(st: os.stat_result) -> bool:
    """Owned by this user and writable by no one else (always true where there are no
    POSIX owners, on Windows)."""
    getuid = getattr(os, "getuid", None)
    if getuid is None:
        return True
    return st.st_uid == getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _load_tables(path: Path) -> lark.Lark | None:
    """The cached parser, or None (no file, not private, unreadable or corrupt: the
    caller rebuilds it)."""
    try:
        with open(path, "rb") as f:
            if not _private(os.fstat(f.fileno())):
                return None
            parser: object = lark.Lark.load(f)  # a foreign pickle may hold anything
    except Exception:  # a corrupt or foreign cache only costs the rebuild
        return None
    if not isinstance(parser, lark.Lark):
        return None
    postlex: object = cast(Any, parser.options).postlex  # typed None in lark's stubs
    return parser if isinstance(postlex, NewlineFilter) else None


def _save_tables(parser: lark.Lark, path: Path) -> None:
    """Write the tables atomically (a private temporary file renamed over ``path``), so
    a concurrent reader sees the old file or the new, never half of one; an unwritable
    cache is skipped."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".grammar-", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            parser.save(f)
        os.replace(tmp, path)
    except Exception:  # a full disk or a vanished folder only costs speed next time
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@functools.cache
def _callback(rule: str) -> Callable[..., Any] | None:
    """``_Build``'s callback for ``rule`` (None: none defined).  (lark's
    ``Transformer`` with ``v_args`` re-wraps a method at every call, each
    ``self.sp(...)`` included: ``functools.update_wrapper`` per node was a third of the
    AST build's time on a long program.)"""
    method = _Build.__dict__.get(rule)
    return method if callable(method) and not rule.startswith("_") else None


def _build(source: Source, tree: lark.Tree) -> ast.Program:
    """The AST of a parse tree: ``_Build``'s callbacks applied bottom-up, iteratively
    (what ``Transformer.transform`` does, without its recursion and per-call
    wrapping).  Each rule's children are tokens, ``None`` placeholders or the values of
    the rule's subtrees, in order; a rule without a callback stays a ``Tree``."""
    builder = _Build(source)
    values: list[Any] = []
    stack: list[tuple[Any, bool]] = [(tree, False)]
    while stack:
        node, ready = stack.pop()
        if not isinstance(node, lark.Tree):
            values.append(node)
        elif not ready:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.children))
        else:
            count = len(node.children)
            children = values[len(values) - count :] if count else []
            del values[len(values) - count :]
            callback = _callback(str(node.data))
            if callback is None:
                values.append(lark.Tree(node.data, children, node.meta))
            else:
                values.append(callback(builder, node.meta, *children))
    return values[0]


def _check_depth(source: Source, tree: lark.Tree) -> None:
    """Reject over-deep trees before any recursive pass sees them (iteratively)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep(_span(source, node.meta))
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, lark.Tree))


def _too_deep(span: Span) -> FplError:
    return error(
        "E0107",
        f"program nested more than {MAX_DEPTH} levels deep",
        span,
        help="split the expression into several `let` statements",
    )


def _describe_expected(expected) -> str:
    names = []
    parser = _lark()
    for term in sorted(expected):
        if term in _TERMINAL_TEXT:
            names.append(_TERMINAL_TEXT[term])
            continue
        try:
            pattern = parser.get_terminal(term).pattern
        except KeyError:
            names.append(term)
            continue
        if pattern.type == "str":
            names.append(f"`{pattern.value}`")
        else:
            names.append(term.lower())
    names = sorted(set(names))
    if len(names) > 8:
        return "one of " + ", ".join(names[:8]) + ", ..."
    return "one of " + ", ".join(names) if len(names) > 1 else (names[0] if names else "")


def _stan_habit(source: Source, line: int) -> FplError | None:
    """E0108 with the FPL form when the failing line reads as Stan (dsl/stan_habits.py)."""
    lines = source.text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    found = stan_habits.explain(lines[line - 1])
    if found is None:
        return None
    message, help_text = found
    text = lines[line - 1]
    first = len(text) - len(text.lstrip()) + 1
    span = Span(source, line, first, line, max(first, len(text.rstrip())))
    return error("E0108", message, span, label="Stan syntax", help=help_text)


def _syntax_error(source: Source, exc: Any) -> FplError:
    """``exc`` is a lark ``UnexpectedInput``; its attributes vary by subclass."""
    line = getattr(exc, "line", 0) or 0
    col = getattr(exc, "column", 0) or 0
    if isinstance(exc, UnexpectedCharacters):
        exc = cast(Any, exc)
        ch = source.text[exc.pos_in_stream] if exc.pos_in_stream < len(source.text) else "?"
        span = Span(source, line, col, line, col)
        return error("E0101", f"unexpected character `{ch}`", span, label="not valid here")
    if isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    ):
        lines = source.text.splitlines() or [""]
        last = len(lines)
        span = Span(source, last, max(1, len(lines[-1])), last, max(1, len(lines[-1])))
        return error(
            "E0101",
            "unexpected end of file",
            span,
            label="the program stops here",
            help="is a `(`, `[` or `{` left open?",
        )
    tok = exc.token
    habit = _stan_habit(source, line if tok.type == "_NL" else tok.line)
    if habit is not None:
        return habit
    text = str(tok).replace("\n", "\\n") if tok.type != "_NL" else "newline"
    span = Span(
        source, tok.line, tok.column, tok.line, max(tok.column, tok.column + len(str(tok)) - 1)
    )
    if tok.type == "_NL":
        span = Span(source, line, col, line, col)
    expected: Any = getattr(exc, "expected", None) or getattr(exc, "accepts", set())
    hint = None
    if expected:
        hint = "expected " + _describe_expected(expected)
    if str(tok) in _KEYWORDS and "NAME" in expected:
        hint = f"`{tok}` is a reserved word and cannot be used as a name"
    return error("E0101", f"unexpected `{text}`", span, label="not expected here", help=hint)


#: Words that open a statement are soft keywords (``lexer.SOFT``); the rest of
#: ``KEYWORDS`` are keywords inside expressions too and cannot be names at all.
_SOFT = SOFT
_KEYWORDS = KEYWORDS
_RESERVED = RESERVED


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a parse or a check allocates its
    tree, AST or IR, and what was made meanwhile counted as old when it is back on.

    A long program's AST and IR are millions of objects and no cycles.  With the
    collector on, its passes over the growing heap made parsing and checking quadratic
    (20k lines: 20.8 s of CPU with it, 12.7 s without; ``benchmarks/check_scaling.py``);
    paused, the first collection after the pause still scanned every object made during
    it as young (1.5-1.8 s at 100k lines, after the parse and after the check).
    Freezing and at once unfreezing moves every tracked object into the oldest
    generation unscanned (documented ``gc`` operations): they are scanned at the next
    full collection, as old objects always are.  Only the collector's timing changes:
    nothing is freed later than a full collection would free it, and reference counting
    frees as before.  Where objects are frozen already (by the process, ``gc.freeze()``
    before a fork, or by the interpreter: CPython 3.12 starts with some) they stay
    frozen: then the collector is only paused."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def parse(text: str, name: str = "<string>") -> ast.Program:
    """Parse FPL source text into a :class:`~fpl.dsl.ast.Program`: the fast parser,
    and lark where it gives up (``FPL_PARSER=lark``: lark alone).

    Raises :class:`FplError` (E0101, E0107, E0108, E0109) with the location on bad
    syntax.
    """
    source = Source(text if text.endswith("\n") else text + "\n", name)
    if os.environ.get("FPL_PARSER", "").strip().lower() != "lark":
        with collector_paused():
            program = fastparse.parse(source)
        if program is not None:
            return program
    return _parse_lark(source)


def parse_with_lark(text: str, name: str = "<string>") -> ast.Program:
    """The lark route alone (the oracle of the fast parser's tests and benchmarks)."""
    return _parse_lark(Source(text if text.endswith("\n") else text + "\n", name))


def _parse_lark(source: Source) -> ast.Program:
    try:
        with collector_paused():
            tree = _lark().parse(source.text)
    except UnexpectedInput as exc:
        raise _syntax_error(source, exc) from None
    except TooDeepError as exc:
        line, col = exc.token.line or 1, exc.token.column or 1
        raise _too_deep(Span(source, line, col, line, col)) from None
    _check_depth(source, tree)
    try:
        with collector_paused():
            return _build(source, tree)
    except UnexpectedInput as exc:
        raise _syntax_error(source, exc) from None
    except lark.exceptions.VisitError as exc:  # an FplError raised inside a callback
        if isinstance(exc.orig_exc, FplError):
            raise exc.orig_exc from None
        raise
