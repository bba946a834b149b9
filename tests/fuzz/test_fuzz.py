"""A bounded fuzzing budget in the suite (the long run: ``python -m tests.fuzz.run``)."""

from __future__ import annotations

import random

from .mutate import EXAMPLES, Outcome, corpus, fuzz, mutate, problems, run_case, tokens

#: seconds of fuzzing per suite run: enough for ~100 mutants, well under the 10 s budget
BUDGET = 6.0


def test_tokens_round_trip_every_example():
    for text in corpus().values():
        assert "".join(tokens(text)) == text


def test_mutants_differ_from_their_program():
    rng = random.Random(0)
    texts = list(corpus().values())
    changed = sum(mutate(t, rng, texts) != t.encode() for t in texts for _ in range(5))
    assert changed >= len(texts) * 4  # a mutation can cancel out (swap of equal tokens)


def test_problems_flags_internal_errors_hangs_and_unlocated_errors():
    assert problems(Outcome("m.fpl", 3, "", "internal error: boom"))
    assert problems(Outcome("m.fpl", None, "", ""))
    assert problems(Outcome("m.fpl", 1, "", "error[E0101]: unexpected `x`"))
    located = "error[E0101]: unexpected `x`\n --> m.fpl:1:2\n"
    assert problems(Outcome("m.fpl", 1, "", located)) == []


def test_problems_flags_a_misquoted_or_unescaped_source_line():
    source = "data N: int\f# a form feed\nparam mu ~ nromal(0, 1)\n"
    right = "error[E0103]: x\n --> m.fpl:2:12\n  |\n2 | param mu ~ nromal(0, 1)\n"
    wrong = right.replace("2 | param mu ~ nromal(0, 1)", "2 | # a form feed")
    raw = "error[E0101]: x\n --> m.fpl:1:1\n  |\n1 | data N: int\f# a form feed\n"
    assert problems(Outcome("m.fpl", 1, "", right, source)) == []
    assert problems(Outcome("m.fpl", 1, "", wrong, source))
    assert problems(Outcome("m.fpl", 1, "", raw, source))  # \f reached the terminal
    escaped = raw.replace("\f", "\\x0c")
    assert problems(Outcome("m.fpl", 1, "", escaped, source)) == []


def test_a_bounded_fuzz_run_finds_no_internal_error_or_hang(tmp_path):
    # an unmutated example compiles: the budget then measures mutants, not the one-time
    # cost of JAX's first trace in this process (seconds when this test runs alone)
    example = EXAMPLES / "eight_schools.fpl"
    warm = run_case(example.read_bytes(), tmp_path / "warm.fpl", 60.0, example.with_suffix(".json"))
    assert warm.code == 0, warm.stderr
    count, compiled, failures = fuzz(
        10_000, seed=20240611, folder=tmp_path, time_limit=5.0, budget=BUDGET
    )
    assert count >= 10
    assert compiled >= 1  # part of the budget lowers mutants against their data
    assert failures == [], [(n, bad) for n, _, bad in failures[:5]]


def test_a_compiled_mutant_that_crashes_the_lowering_is_a_failure(tmp_path):
    # the compile share reaches the transforms: before issue 11's fix, a zero-size
    # bounded param was a ZeroDivisionError there (exit 3), which `check` never saw
    model = b"data N: int\nparam mu ~ normal(0, 1)\nparam x: real<lower=0>[N]\n"
    data = tmp_path / "d.json"
    data.write_text('{"N": 0}')
    outcome = run_case(model, tmp_path / "m.fpl", 30.0, data)
    assert outcome.code == 0 and "lambda" in outcome.stdout, outcome.stderr
    assert problems(outcome) == []
    # and a binding error is located, not an internal one
    data.write_text('{"N": -1}')
    outcome = run_case(model, tmp_path / "m.fpl", 30.0, data)
    assert outcome.code == 1 and problems(outcome) == [], outcome.stderr
