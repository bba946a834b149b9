"""Text -> AST without lark: one regular expression lexes, recursive descent with
precedence climbing parses, and the AST is built as the parse goes (issue 11: lark's
pure-Python LALR took ~70 s of CPU for 100k lines; this takes a few seconds).

It reads the language of ``dsl/grammar.lark`` and gives up on everything else:
:func:`parse` returns ``None`` for any input it does not accept (a syntax error, a
construct it leaves to lark, a program near the depth limit), and ``dsl/parser.py`` then
parses the text with lark, which produces the diagnostic.  So every syntax error is
lark's, byte for byte, by construction.  The invariants (checked by
``tests/dsl/test_fastparse.py`` on every program of the repository and on fuzzed
mutants, comparing with the lark route):

* it never accepts a text lark rejects;
* where it accepts, its AST equals lark's, spans included.

How each part mirrors the lark route:

* Tokens (``dsl/lexer.py``): lark's, newlines filtered as ``parser.NewlineFilter``
  does; a word is one token, and a keyword found where a name is needed (or the other
  way round) makes the parser give up, except for the soft keywords the grammar
  accepts as names (``soft_name``, declared names).
* Spans: a node spans from the first to the last token of its rule, brackets around
  an operand included (lark's "container" positions): each parse function returns
  ``(node, first token, last token, height)``, the parenthesised expression keeping its
  own node and span but the parentheses as its first and last tokens.
* Depth: ``height`` is the height of lark's parse tree for the same text (every rule
  that lark keeps as a tree counts, ``callargs``/``arglist``/``index_single``
  included); a program whose tree is deeper than ``MAX_DEPTH`` is left to lark, which
  refuses it with E0107.  Brackets nested deeper than :data:`NESTING` are left to lark
  too, so this parser's recursion stays far from Python's limit.  (lark's lexer also
  refuses an operator chain past ``MAX_DEPTH`` early, ``parser.ChainDepth``; that count
  is a lower bound of the tree's height, so a program this parser accepts never trips
  it.)
"""

from __future__ import annotations

from fpl.dsl import ast
from fpl.dsl.lexer import (
    KEYWORDS,
    MAX_DEPTH,
    MAX_INT,
    NESTING,
    SOFT,
    STRUCT_TYPES,
    GiveUpError,
    Tokens,
)
from fpl.dsl.spans import Source, Span

#: the grammar's ``soft_name`` rule: keywords read as a name inside an expression
_SOFT_NAMES = frozenset(("data", "param", "weight", "let", "out", "target", "gen"))
#: binary operators: precedence level (higher binds tighter) and the AST's name
_LEVEL = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3}
_LEVEL |= {"+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "@": 5, ".*": 5, "./": 5}
_COMPARISON = 3
_BINARY = {"||": "or", "&&": "and", "==": "eq", "!=": "ne", "<": "lt", "<=": "le"}
_BINARY |= {">": "gt", ">=": "ge", "+": "add", "-": "sub", "*": "mul", "/": "div"}
_BINARY |= {"%": "mod", "@": "matmul", ".*": "mul", "./": "div"}
_PREFIX = {"-": "neg", "+": "pos", "!": "not"}
_SEPARATORS = frozenset(("NL", ";"))
#: tokens that end an expression (none continues one: no operator, bracket or option)
_AFTER_EXPRESSION = frozenset((",", ")", "]", "}", ":", "~", "NL", ";", "EOF"))
_LITERALS = frozenset(("NAME", "INT", "FLOAT"))


#: Spans and the commonest nodes are made without the frozen dataclass's ``__init__``,
#: whose one ``object.__setattr__`` per field took ~40 % of the parse: the object gets
#: the same ``__dict__``, every field by name (a span's filled in place, ~3x faster than
#: ``Span(...)``; a node's given whole, ~1.5x).  The classes have no ``__slots__`` and no
#: ``__post_init__``; ``tests/dsl/test_fastparse.py`` checks that, that each node's
#: ``__dict__`` holds exactly its fields, and compares every node and span with lark's.
_new = object.__new__
_set_fields = object.__setattr__


def _node(cls: type, fields: dict):
    """``cls(**fields)`` for a frozen dataclass, without its per-field ``__setattr__``."""
    node: object = _new(cls)
    _set_fields(node, "__dict__", fields)
    return node


def parse(source: Source) -> ast.Program | None:
    """The program of ``source`` (its text ending in a newline), or None where this
    parser gives up and lark must decide."""
    try:
        return _Parser(source, Tokens(source.text)).program()
    except (GiveUpError, RecursionError):
        return None


# An expression as the parse functions return it: (node, first token, last token,
# height of lark's tree), the tokens being the brackets around it where there are.
Parsed = tuple


class _Parser:
    def __init__(self, source: Source, tokens: Tokens):
        self.source = source
        self.kinds = tokens.kinds
        self.texts = tokens.texts
        self.lines = tokens.lines
        self.columns = tokens.columns
        self.i = 0
        self.nesting = 0
        self.height = 0

    # ---- helpers ----
    def span(self, first: int, last: int) -> Span:
        """The span from token ``first`` to token ``last`` (neither a newline)."""
        columns = self.columns
        column = columns[first]
        end = columns[last] + len(self.texts[last]) - 1
        span = _new(Span)
        fields = span.__dict__
        fields["source"] = self.source
        fields["line"] = self.lines[first]
        fields["col"] = column
        fields["end_line"] = self.lines[last]
        fields["end_col"] = end if end > column else column
        return span

    def expect(self, kind: str) -> int:
        i = self.i
        if self.kinds[i] != kind:
            raise GiveUpError
        self.i = i + 1
        return i

    def declared(self) -> str:
        """A name being declared: a soft keyword is a name there, a reserved word is
        lark's E0101."""
        i = self.i
        kind = self.kinds[i]
        if kind != "NAME" and kind not in SOFT:
            raise GiveUpError
        self.i = i + 1
        return self.texts[i]

    def name(self) -> int:
        """A plain name (not a keyword: lark may read those either way)."""
        return self.expect("NAME")

    def separators(self) -> None:
        kinds = self.kinds
        i = self.i
        while kinds[i] in _SEPARATORS:
            i += 1
        self.i = i

    # ---- program and statements ----
    def program(self) -> ast.Program:
        kinds = self.kinds
        statements = []
        height = 0
        self.separators()
        while kinds[self.i] != "EOF":
            statement, statement_height = self.statement()
            statements.append(statement)
            height = max(height, statement_height)
            if kinds[self.i] not in _SEPARATORS and kinds[self.i] != "EOF":
                raise GiveUpError
            self.separators()
        self.height = height + 1  # lark's ``start`` tree holds the statements
        if self.height > MAX_DEPTH:
            raise GiveUpError
        return ast.Program(tuple(statements), self.program_span())

    def program_span(self) -> Span:
        """From the first token to the end of the last, newlines included (lark's
        ``start`` rule holds the separators)."""
        count = len(self.kinds) - 2
        if count == 0:
            return Span(self.source, 0, 0, 0, 0)
        last_text = self.texts[count - 1]
        end_line = self.lines[count - 1]
        end = self.columns[count - 1] + len(last_text)
        if self.kinds[count - 1] == "NL":
            end_line += last_text.count("\n")
            end = len(last_text) - last_text.rindex("\n")
        column = self.columns[0]
        return Span(self.source, self.lines[0], column, end_line, max(column, end - 1))

    def statement(self) -> tuple[ast.Stmt, int]:
        kinds = self.kinds
        start = self.i
        kind = kinds[start]
        following = kinds[start + 1]
        declares = following == "NAME" or following in KEYWORDS
        if kind in ("data", "param", "weight", "let", "out", "gen") and declares:
            self.i += 1
            name = self.declared()
            if kind == "let" or kind == "out":
                self.expect("=")
                value = self.expr()
                node_type = ast.Let if kind == "let" else ast.Out
                return node_type(name, value[0], self.span(start, value[2])), 1 + value[3]
            if kind == "gen":
                if kinds[self.i] == "~":
                    self.i += 1
                    dist, last, height = self.dist()
                    return ast.GenTilde(name, dist, self.span(start, last)), 1 + height
                self.expect("=")
                value = self.expr()
                return ast.GenLet(name, value[0], self.span(start, value[2])), 1 + value[3]
            if kind == "param":
                return self.param(start, name)
            self.expect(":")
            typ, last, height = self.type()
            if kind == "data":
                return ast.DataDecl(name, typ, self.span(start, last)), 1 + height
            self.expect("init")
            value = self.expr()
            node = ast.WeightDecl(name, typ, value[0], self.span(start, value[2]))
            return node, 1 + max(height, value[3])
        if kind == "target" and following == "+=":
            self.i += 2
            value = self.expr()
            return ast.Target(value[0], self.span(start, value[2])), 1 + value[3]
        if kind == "loss":
            self.i += 1
            value = self.expr()
            return ast.Loss(value[0], self.span(start, value[2])), 1 + value[3]
        if kind == "fn":
            return self.function()
        if kind == "import":
            self.i += 1
            path = self.expect("STRING")
            return ast.Import(self.texts[path][1:-1], self.span(start, path)), 1
        lhs = self.expr()
        self.expect("~")
        dist, last, height = self.dist()
        return ast.Tilde(lhs[0], dist, self.span(lhs[1], last)), 1 + max(lhs[3], height)

    def param(self, start: int, name: str) -> tuple[ast.Stmt, int]:
        typ = prior = None
        last, height = start + 1, 0
        if self.kinds[self.i] == ":":
            self.i += 1
            typ, last, height = self.type()
        if self.kinds[self.i] == "~":
            self.i += 1
            prior, last, prior_height = self.dist()
            height = max(height, prior_height)
        return ast.ParamDecl(name, typ, prior, self.span(start, last)), 1 + height

    def dist(self) -> tuple[ast.Call, int, int]:
        """``NAME "(" [arglist] ")"``: (call, last token, height)."""
        name = self.name()
        self.expect("(")
        args, kwargs, height = self.arglist() if self.kinds[self.i] != ")" else ((), (), 0)
        last = self.expect(")")
        func = ast.Name(self.texts[name], self.span(name, name))
        return ast.Call(func, args, kwargs, False, self.span(name, last)), last, 1 + height

    def function(self) -> tuple[ast.Stmt, int]:
        kinds = self.kinds
        start = self.i
        self.i += 1
        name = self.declared()
        self.expect("(")
        params = []
        height = 0
        if kinds[self.i] != ")":
            params_height = 0
            while True:
                first = self.i
                param_name = self.declared()
                typ, last, type_height = None, first, 0
                if kinds[self.i] == ":":
                    self.i += 1
                    typ, last, type_height = self.type()
                params.append(ast.FnParam(param_name, typ, self.span(first, last)))
                params_height = max(params_height, 1 + type_height)
                if kinds[self.i] != ",":
                    break
                self.i += 1
            height = 1 + params_height
        self.expect(")")
        returns = None
        if kinds[self.i] == "->":
            self.i += 1
            returns, _, returns_height = self.type()
            height = max(height, returns_height)
        if kinds[self.i] == "=":
            self.i += 1
            body = self.expr()
            node = ast.FnDef(name, tuple(params), returns, (), body[0], self.span(start, body[2]))
            return node, 1 + max(height, body[3])
        lets, result, last, block_height = self.block()
        node = ast.FnDef(name, tuple(params), returns, lets, result, self.span(start, last))
        return node, 1 + max(height, block_height)

    def block(self) -> tuple[tuple[ast.Let, ...], ast.Expr, int, int]:
        """``{ let ...; return expr }``: (lets, result, the ``}``, height)."""
        kinds = self.kinds
        self.expect("{")
        self.separators()
        lets = []
        height = 0
        while kinds[self.i] == "let":
            first = self.i
            self.i += 1
            name = self.declared()
            self.expect("=")
            value = self.expr()
            lets.append(ast.Let(name, value[0], self.span(first, value[2])))
            height = max(height, 1 + value[3])
            if kinds[self.i] not in _SEPARATORS:
                raise GiveUpError
            self.separators()
        self.expect("return")
        result = self.expr()
        self.separators()
        last = self.expect("}")
        return tuple(lets), result[0], last, 1 + max(height, result[3])

    # ---- types ----
    def type(self) -> tuple[ast.TypeExpr, int, int]:
        """``real<lower=0>[N]``: (type, last token, height)."""
        kinds = self.kinds
        start = self.i
        base = kinds[start]
        structured = base in STRUCT_TYPES
        if base != "int" and base != "real" and not structured:
            raise GiveUpError
        self.i += 1
        last, height = start, 0
        bounds: tuple[ast.Keyword, ...] = ()
        shape: tuple[ast.Expr, ...] = ()
        if kinds[self.i] == "<":
            self.i += 1
            keywords = []
            while True:
                name = self.name()
                self.expect("=")
                value = self.binary(4)
                keywords.append(ast.Keyword(self.texts[name], value[0], self.span(name, value[2])))
                height = max(height, 2 + value[3])  # constraint -> bound -> arith
                if kinds[self.i] != ",":
                    break
                self.i += 1
            last = self.expect(">")
            bounds = tuple(keywords)
        if kinds[self.i] == "[":
            self.i += 1
            dims = [self.binary(4)]
            while kinds[self.i] == ",":
                self.i += 1
                dims.append(self.binary(4))
            last = self.expect("]")
            shape = tuple(d[0] for d in dims)
            height = max(height, 1 + max(d[3] for d in dims))
        elif structured:
            raise GiveUpError
        return ast.TypeExpr(base, bounds, shape, self.span(start, last)), last, 1 + height

    # ---- expressions, loosest binding first ----
    def expr(self) -> Parsed:
        """``implicit | ternary``."""
        self.nesting += 1
        if self.nesting > NESTING:
            raise GiveUpError
        kinds = self.kinds
        i = self.i
        kind = kinds[i]
        if kind in _LITERALS and kinds[i + 1] in _AFTER_EXPRESSION:
            parsed = self.atom()  # a lone name or number (most arguments): no operators
        elif kind == "fix" or kind == "root" or (kind == "argmin" and kinds[i + 1] == "NAME"):
            parsed = self.implicit()
        else:
            parsed = self.binary(1)
            if kinds[self.i] == "?":
                self.i += 1
                then = self.expr()
                self.expect(":")
                orelse = self.expr()
                first, last = parsed[1], orelse[2]
                node = ast.Cond(parsed[0], then[0], orelse[0], self.span(first, last))
                parsed = (node, first, last, 1 + max(parsed[3], then[3], orelse[3]))
        self.nesting -= 1
        return parsed

    def binary(self, minimum: int) -> Parsed:
        """Operators of level ``minimum`` and tighter: precedence climbing, left
        associative; comparisons do not chain (``a < b < c`` is lark's error)."""
        left = self.unary()
        kinds = self.kinds
        while True:
            op = kinds[self.i]
            level = _LEVEL.get(op)
            if level is None or level < minimum:
                return left
            self.i += 1
            right = self.binary(level + 1)
            first, last = left[1], right[2]
            node = _node(
                ast.Binary,
                {
                    "op": _BINARY[op],
                    "left": left[0],
                    "right": right[0],
                    "span": self.span(first, last),
                },
            )
            height = left[3] if left[3] > right[3] else right[3]
            left = (node, first, last, height + 1)
            if level == _COMPARISON and _LEVEL.get(kinds[self.i]) == _COMPARISON:
                raise GiveUpError

    def unary(self) -> Parsed:
        """Prefix ``- + !``, then a postfix expression and ``^`` (right associative,
        its exponent a unary expression)."""
        i = self.i
        op = self.kinds[i]
        if op in _PREFIX:
            self.nesting += 1
            if self.nesting > NESTING:
                raise GiveUpError
            self.i = i + 1
            operand = self.unary()
            self.nesting -= 1
            last = operand[2]
            node = _node(
                ast.Unary, {"op": _PREFIX[op], "operand": operand[0], "span": self.span(i, last)}
            )
            return (node, i, last, 1 + operand[3])
        base = self.postfix()
        if self.kinds[self.i] != "^":
            return base
        self.i += 1
        self.nesting += 1
        if self.nesting > NESTING:
            raise GiveUpError
        exponent = self.unary()
        self.nesting -= 1
        first, last = base[1], exponent[2]
        node = ast.Binary("pow", base[0], exponent[0], self.span(first, last))
        return (node, first, last, 1 + max(base[3], exponent[3]))

    def postfix(self) -> Parsed:
        """An atom and its calls, indexing, ``.name`` and transposes."""
        node, first, last, height = self.atom()
        kinds = self.kinds
        while True:
            kind = kinds[self.i]
            if kind == "(":
                self.i += 1
                args, kwargs, conditional, args_height = self.callargs()
                last = self.expect(")")
                node = _node(
                    ast.Call,
                    {
                        "func": node,
                        "args": args,
                        "kwargs": kwargs,
                        "conditional": conditional,
                        "span": self.span(first, last),
                    },
                )
                height = 1 + (height if height > args_height else args_height)
            elif kind == "[":
                self.i += 1
                items, items_height = self.index_items()
                last = self.expect("]")
                node = _node(
                    ast.Index, {"target": node, "items": items, "span": self.span(first, last)}
                )
                height = 1 + max(height, items_height)
            elif kind == ".":
                last = self.i + 1
                if kinds[last] != "NAME":
                    raise GiveUpError
                self.i += 2
                node = ast.Attr(node, self.texts[last], self.span(first, last))
                height += 1
            elif kind == "'":
                last = self.i
                self.i += 1
                node = ast.Unary("transpose", node, self.span(first, last))
                height += 1
            else:
                return (node, first, last, height)

    def atom(self) -> Parsed:
        kinds = self.kinds
        i = self.i
        kind = kinds[i]
        self.i = i + 1
        if kind == "NAME" or kind == "STRING" or kind in _SOFT_NAMES:
            return (_node(ast.Name, {"id": self.texts[i], "span": self.span(i, i)}), i, i, 1)
        if kind == "INT":
            digits = self.texts[i].lstrip("0") or "0"
            if len(digits) > len(str(MAX_INT)) or int(digits) > MAX_INT:
                raise GiveUpError  # lark's route says E0109
            node = _node(ast.Num, {"value": int(digits), "is_int": True, "span": self.span(i, i)})
            return (node, i, i, 1)
        if kind == "FLOAT":
            value = float(self.texts[i])
            node = _node(ast.Num, {"value": value, "is_int": False, "span": self.span(i, i)})
            return (node, i, i, 1)
        if kind == "(":
            inner = self.expr()
            last = self.expect(")")
            return (inner[0], i, last, inner[3])
        if kind == "[":
            items = []
            if kinds[self.i] != "]":
                items.append(self.expr())
                while kinds[self.i] == ",":
                    self.i += 1
                    items.append(self.expr())
            last = self.expect("]")
            node = ast.ArrayLit(tuple(x[0] for x in items), self.span(i, last))
            return (node, i, last, 1 + max((x[3] for x in items), default=0))
        following = kinds[i + 1]
        if kind == "argmin" and following != "NAME" and following not in KEYWORDS:
            return (ast.Name("argmin", self.span(i, i)), i, i, 1)
        raise GiveUpError

    # ---- arguments and indices ----
    def argument(self) -> tuple[ast.Expr | ast.Keyword, int]:
        """``expr`` or ``NAME = expr``: (node, height)."""
        i = self.i
        if self.kinds[i] == "NAME" and self.kinds[i + 1] == "=":
            self.i = i + 2
            value = self.expr()
            span = self.span(i, value[2])
            keyword = _node(ast.Keyword, {"name": self.texts[i], "value": value[0], "span": span})
            return keyword, 1 + value[3]
        value = self.expr()
        return value[0], value[3]

    def arglist(self, first=None) -> tuple[tuple, tuple, int]:
        """``arg ("," arg)*``, positional before keyword: (args, kwargs, height)."""
        items = [first if first is not None else self.argument()]
        while self.kinds[self.i] == ",":
            self.i += 1
            items.append(self.argument())
        args, kwargs = [], []
        for node, _ in items:
            if isinstance(node, ast.Keyword):
                kwargs.append(node)
            elif kwargs:
                raise GiveUpError  # positional after keyword: lark's route says E0101
            else:
                args.append(node)
        return tuple(args), tuple(kwargs), 1 + max(h for _, h in items)

    def callargs(self) -> tuple[tuple, tuple, bool, int]:
        """A call's arguments, after its ``(``: (args, kwargs, conditional, height)."""
        if self.kinds[self.i] == ")":
            return (), (), False, 0
        first = self.argument()
        if self.kinds[self.i] != "|":
            args, kwargs, height = self.arglist(first)
            return args, kwargs, False, 1 + height  # callargs -> arglist
        if isinstance(first[0], ast.Keyword):
            raise GiveUpError
        self.i += 1
        args, kwargs, height = self.arglist()
        return (first[0], *args), kwargs, True, 1 + max(first[1], height)

    def index_items(self) -> tuple[tuple, int]:
        """``item ("," item)*`` after ``[``, an item an expression or a slice
        ``[lo] : [hi]``: (items, height)."""
        kinds = self.kinds
        items = []
        height = 0
        while True:
            low = None if kinds[self.i] == ":" else self.expr()
            if kinds[self.i] == ":":
                colon = self.i
                self.i += 1
                high = None if kinds[self.i] in (",", "]") else self.expr()
                first = low[1] if low is not None else colon
                last = high[2] if high is not None else colon
                lo_node, lo_height = (low[0], low[3]) if low is not None else (None, 0)
                hi_node, hi_height = (high[0], high[3]) if high is not None else (None, 0)
                items.append(ast.Slice(lo_node, hi_node, self.span(first, last)))
                height = max(height, 1 + max(lo_height, hi_height))
            else:
                assert low is not None
                items.append(low[0])
                height = max(height, 1 + low[3])
            if kinds[self.i] != ",":
                return tuple(items), height
            self.i += 1

    # ---- implicit nodes ----
    def implicit(self) -> Parsed:
        """``fix z: T = body``, ``root z: T of body``, ``argmin z: T of body [subject
        to c, ...]``, then options ``init v``, ``with solver(...)``, ``name=value``."""
        kinds, texts = self.kinds, self.texts
        start = self.i
        kind = kinds[start]
        self.i += 1
        var = texts[self.name()]
        self.expect(":")
        typ, _, height = self.type()
        self.expect("=" if kind == "fix" else "of")
        body = self.expr()
        last = body[2]
        height = max(height, body[3])
        constraints: tuple[ast.Expr, ...] = ()
        i = self.i
        if kind == "argmin" and kinds[i] == "NAME" and kinds[i + 1] == "NAME":
            if texts[i] != "subject" or texts[i + 1] != "to":
                raise GiveUpError  # lark's route says E0101
            self.i += 2
            items = [self.binary(_COMPARISON)]
            while kinds[self.i] == ",":
                self.i += 1
                items.append(self.binary(_COMPARISON))
            constraints = tuple(x[0] for x in items)
            last = items[-1][2]
            height = max(height, 1 + max(x[3] for x in items))
        init = solver = None
        options = []
        while True:
            i = self.i
            option = kinds[i]
            if option == "init":
                self.i += 1
                value = self.binary(1)
                init, last = value[0], value[2]
                height = max(height, 1 + value[3])
            elif option == "with":
                self.i += 1
                name = self.name()
                self.expect("(")
                args, kwargs, args_height = self.arglist() if kinds[self.i] != ")" else ((), (), 0)
                last = self.expect(")")
                func = ast.Name(texts[name], self.span(name, name))
                solver = ast.Call(func, args, kwargs, False, self.span(i, last))
                height = max(height, 1 + args_height)
            elif option == "NAME" and kinds[i + 1] == "=":
                self.i += 2
                value = self.postfix()
                options.append(ast.Keyword(texts[i], value[0], self.span(i, value[2])))
                last = value[2]
                height = max(height, 1 + value[3])
            else:
                break
        node = ast.Implicit(
            kind,  # type: ignore[arg-type]  # one of fix/root/argmin: the caller's test
            var,
            typ,
            body[0],
            init,
            solver,
            tuple(options),
            self.span(start, last),
            constraints,
        )
        return (node, start, last, 1 + height)
