"""The editor grammars: the Pygments lexer (``fpl.dsl.highlight``) and the TextMate
grammar (``docs/editors/vscode/syntaxes/fpl.tmLanguage.json``).

Both must tokenize every example with no error token, give keywords, types,
distributions, solvers, numbers, comments and strings their scopes, and know exactly the
words ``dsl/grammar.lark`` spells out (a new keyword fails here until they learn it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Error, Token

from fpl.dsl import highlight

ROOT = Path(__file__).resolve().parents[2]
TEXTMATE = ROOT / "docs" / "editors" / "vscode" / "syntaxes" / "fpl.tmLanguage.json"
EXAMPLES = sorted((ROOT / "examples").rglob("*.fpl"))
MODELS = EXAMPLES + sorted((ROOT / "tests" / "posteriordb" / "models").glob("*.fpl"))

FIXTURE = """\
# a comment
import "layers.fpl"
data N: int<lower=0>
param sigma: real<lower=0> ~ exponential(1.5e-1)
weight W: real[N, 3] init normal(0, 0.05)
fn step(s, r) = s + r
let z = fix z: real[N] = tanh(W @ z) with anderson(memory=5) grad=phantom(k=3) warm=true
y ~ normal(z, sigma)
gen ll = normal_lpdf(y | z, sigma)
"""

# (text, Pygments token, TextMate scope) for words of the fixture
EXPECTED = [
    ("# a comment", Token.Comment.Single, "comment.line.number-sign.fpl"),
    ('"layers.fpl"', Token.Literal.String.Double, "string.quoted.double.fpl"),
    ("import", Token.Keyword, "keyword.control.fpl"),
    ("data", Token.Keyword.Declaration, "keyword.other.declaration.fpl"),
    ("N", Token.Name.Variable, "variable.other.declaration.fpl"),
    ("int", Token.Keyword.Type, "storage.type.fpl"),
    ("exponential", Token.Name.Builtin, "support.function.distribution.fpl"),
    ("1.5e-1", Token.Literal.Number.Float, "constant.numeric.float.fpl"),
    ("3", Token.Literal.Number.Integer, "constant.numeric.integer.fpl"),
    ("0.05", Token.Literal.Number.Float, "constant.numeric.float.fpl"),
    ("step", Token.Name.Function, "entity.name.function.fpl"),
    ("fix", Token.Keyword, "keyword.control.fpl"),
    ("anderson", Token.Name.Builtin.Pseudo, "support.function.solver.fpl"),
    ("phantom", Token.Name.Builtin.Pseudo, "support.constant.grad-mode.fpl"),
    ("true", Token.Keyword.Constant, "constant.language.fpl"),
    ("normal_lpdf", Token.Name.Builtin, "support.function.distribution.fpl"),
    ("tanh", Token.Name, "variable.other.fpl"),
]


def grammar_words() -> set[str]:
    """Every word ``grammar.lark`` spells out as a literal (keywords and type names)."""
    text = (ROOT / "dsl" / "grammar.lark").read_text()
    return set(re.findall(r'"([A-Za-z_][A-Za-z_0-9]*)"', text))


# ---- a small TextMate matcher -------------------------------------------------------
# Applies a grammar's single-line `match` rules the way TextMate does: at each position
# the rule whose match starts earliest wins (the first listed on a tie); text no rule
# matches keeps the file's scope.  The grammar has no begin/end rules, so this is exact
# for it up to the regex dialect (its patterns use only what Oniguruma and Python share).


def _rules(grammar: dict, patterns: list[dict]) -> list[dict]:
    out = []
    for p in patterns:
        if "include" in p:
            out += _rules(grammar, [grammar["repository"][p["include"][1:]]])
        elif "patterns" in p:
            out += _rules(grammar, p["patterns"])
        else:
            out.append(p)
    return out


def textmate_tokens(grammar: dict, text: str) -> list[tuple[str, str]]:
    rules = [(re.compile(r["match"]), r) for r in _rules(grammar, grammar["patterns"])]
    tokens = []
    for line in text.splitlines():
        pos = 0
        while pos < len(line):
            best = None
            for regex, rule in rules:
                m = regex.search(line, pos)
                if m and m.end() > m.start() and (best is None or m.start() < best[0].start()):
                    best = (m, rule)
            if best is None:
                break
            m, rule = best
            if "captures" in rule:
                for group, capture in rule["captures"].items():
                    if m.group(int(group)) is not None:
                        tokens.append((m.group(int(group)), capture["name"]))
            else:
                tokens.append((m.group(0), rule["name"]))
            pos = m.end()
    return tokens


@pytest.fixture(scope="module")
def textmate() -> dict:
    return json.loads(TEXTMATE.read_text())


def pygments_tokens(text: str) -> list[tuple[str, object]]:
    return [(v, t) for t, v in get_lexer_by_name("fpl").get_tokens(text) if v.strip()]


# ---- tests --------------------------------------------------------------------------


def test_lexer_is_registered_for_fpl_files():
    assert isinstance(get_lexer_for_filename("model.fpl"), highlight.FplLexer)


def test_pygments_keywords_are_the_grammars():
    assert set(highlight.KEYWORDS) | set(highlight.TYPES) == grammar_words()


def test_textmate_keywords_are_the_grammars(textmate):
    repo = textmate["repository"]
    patterns = repo["declaration"]["patterns"] + repo["keywords"]["patterns"]
    words = set()
    for p in patterns:
        for alternatives in re.findall(r"\\b\(([a-z_|]+)\)", p["match"]):
            words |= set(alternatives.split("|"))
    assert words - {"true", "false"} == grammar_words()


def test_textmate_regexes_compile(textmate):
    rules = _rules(textmate, textmate["patterns"])
    assert len(rules) > 10
    for rule in rules:
        re.compile(rule["match"])


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_every_model_tokenizes_cleanly(path, textmate):
    text = path.read_text()
    bad = [(t, v) for v, t in pygments_tokens(text) if t in Error]
    assert not bad, f"pygments error tokens: {bad}"
    tm = textmate_tokens(textmate, text)
    assert not [t for t in tm if t[1].startswith("invalid")], "textmate invalid tokens"
    # every non-blank character is covered by some token (nothing silently skipped)
    assert "".join(v for v, _ in tm).replace(" ", "") == "".join(
        "".join(line.split()) for line in text.splitlines()
    )


def test_fixture_scopes(textmate):
    py = pygments_tokens(FIXTURE)
    tm = textmate_tokens(textmate, FIXTURE)
    for text, token, scope in EXPECTED:
        assert (text, token) in py, (text, [t for v, t in py if v == text])
        assert (text, scope) in tm, (text, [s for v, s in tm if v == text])


def test_soft_keywords_are_names_in_expressions(textmate):
    """`weight` is a statement word but also a legal name (posteriordb's mesquite)."""
    text = "data weight: real[N]\nlet w2 = weight * 2\n"
    assert ("weight", Token.Name) in pygments_tokens(text)
    assert ("weight", "variable.other.fpl") in textmate_tokens(textmate, text)


def test_broken_text_is_flagged(textmate):
    """The checks above are live: a character FPL does not have is an error token."""
    text = "let x = 1 $ 2\n"
    assert any(t in Error for _, t in pygments_tokens(text))
    assert ("$", "invalid.illegal.fpl") in textmate_tokens(textmate, text)
