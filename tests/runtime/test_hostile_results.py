"""Hostile input (issue 11), the second part: improper posteriors reported as located
warnings, summaries of doctored fits, and the deepest accepted programs lowered at
Python's default recursion limit.  Each test fails on the code before these fixes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import fpl
from fpl.dsl.diagnostics import FplError
from fpl.dsl.parser import MAX_DEPTH
from fpl.runtime import runaway
from fpl.runtime.cli import main


def _run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# ---- improper posteriors: W0406 -----------------------------------------------------------


def test_a_random_walk_out_to_1e30_runs_away_and_a_wide_prior_does_not():
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(size=(2, 200, 1)) * 1e29, axis=1)  # an improper `real`
    wide = rng.normal(size=(2, 200, 1)) * 1e9  # a `normal(0, 1e9)` prior alone: fine
    found = runaway.find({"mu": 1, "tau": 1}, np.concatenate([walk, wide], axis=2), {})
    assert [(r.param, r.chains) for r in found] == [("mu", (0, 1))]
    assert found[0].peak == pytest.approx(np.abs(walk).max())


def test_constrained_draws_that_overflow_run_away():
    # exp of an unconstrained 707 (a flat log scale) is 1e307; a later inf is not finite
    u = np.full((2, 10, 1), 1.0)
    s = np.ones((2, 10))
    s[1, 4] = np.inf
    found = runaway.find({"s": 1}, u, {"s": s})
    assert [(r.param, r.chains, r.peak) for r in found] == [("s", (1,), np.inf)]
    assert "non-finite" in runaway.warning(found[0], None, 2).message


def test_an_improper_posterior_is_a_located_warning_in_the_summary(tmp_path, capsys):
    model = tmp_path / "m.fpl"
    model.write_text("data y: real\nparam mu: real\n")
    (tmp_path / "d.json").write_text('{"y": 1.0}')
    out = tmp_path / "fit.json"
    argv = ["sample", model, "--data", tmp_path / "d.json", "--seed", "1", "--chains", "2"]
    code, text = _run(capsys, *argv, "--warmup", "100", "--draws", "50", "-o", out)
    assert code == 0 and "warning[W0406]" in text and f"{model}:2:1" in text
    assert "param mu: real" in text  # the declaration, echoed
    code, text = _run(capsys, "summary", out)  # the saved fit keeps the warning
    assert code == 0 and "warning[W0406]" in text


def test_a_proper_posterior_has_no_runaway_warning():
    fit = fpl.compile("param mu ~ normal(0, 1e9)\n").sample(
        {}, seed=1, chains=2, warmup=100, draws=50, progress=False
    )
    assert "warnings" not in fit.attrs and "W0406" not in str(fit.summary())


# ---- summaries of doctored fits -----------------------------------------------------------


def _fit_file(tmp_path, draws: int = 5, **attrs) -> str:
    document = {
        "posterior": {"mu": np.zeros((2, draws)).tolist()},
        "sample_stats": {"lp": np.zeros((2, draws)).tolist()},
        "attrs": {"model": "m", "max_tree_depth": 10, **attrs},
    }
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_summary_of_a_fit_with_no_draws_is_e0404(tmp_path, capsys):
    code, text = _run(capsys, "summary", _fit_file(tmp_path, draws=0))
    assert code == 1 and "E0404" in text and "no draws" in text


@pytest.mark.parametrize("value", ["ten", 1e300, -1, 2.5])
def test_summary_of_a_fit_whose_counts_are_not_counts_is_e0404(tmp_path, capsys, value):
    code, text = _run(capsys, "summary", _fit_file(tmp_path, max_tree_depth=value))
    assert code == 1 and "E0404" in text and "max_tree_depth" in text


def test_summary_of_a_well_formed_fit_still_works(tmp_path, capsys):
    code, text = _run(capsys, "summary", _fit_file(tmp_path, seconds="not a number"))
    assert code == 0 and "mu" in text


# ---- the deepest accepted programs, lowered ---------------------------------------------


def test_deepest_unary_chains_lower_at_the_default_recursion_limit(tmp_path):
    """A fresh process (Python's default limit, the CLI's own stack): hoisting and the
    lowering recursed 3 frames a level and overflowed at 350 nested `-` under the old
    limit of 400."""
    n = MAX_DEPTH - 3  # the deepest the parser accepts (`out y = ` adds three levels)
    model = tmp_path / "m.fpl"
    model.write_text(f"param mu ~ normal(0, 1)\nout y = {'-' * n}mu\nout z = {'2^' * n}mu\n")
    cli = [sys.executable, "-m", "fpl.runtime.cli", "compile", model, "--emit", "jaxpr"]
    ok = subprocess.run(cli, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-500:]
    assert ok.stdout.count(" neg ") >= n and ok.stdout.count(" pow ") >= n
    with pytest.raises(FplError) as exc:  # one level more is refused while parsing
        fpl.compile(f"param mu ~ normal(0, 1)\nout y = {'-' * (n + 1)}mu\n")
    assert exc.value.code == "E0107"


# ---- index data, range-checked at bind (E0307) ------------------------------------------

_INDEXED = """data N: int
data g: int[N]
data y: real[N]
param a: real[2] ~ normal(0, 1)
fn pick(v) = v[g]
y ~ normal(pick(a), 1)
"""


@pytest.mark.parametrize("bad", [[1, 2, 3], [0, 1, 2], [1, -1, 2]])
def test_index_data_outside_the_indexed_axis_is_e0307_naming_the_field(bad):
    """On the old code these bound fine and ended in a bare E0402 (or JAX's clamping read
    another element)."""
    model = fpl.compile(_INDEXED, "m.fpl")
    with pytest.raises(FplError) as exc:
        model.bind({"N": 3, "g": bad, "y": [0.1, 0.2, 0.3]})
    text = exc.value.render()
    assert exc.value.code == "E0307" and "`g`" in text and "m.fpl:2:1" in text
    assert "m.fpl:5:14" in text  # the index inside the function body, as a note


def test_index_data_within_range_binds():
    model = fpl.compile(_INDEXED, "m.fpl")
    model.bind({"N": 3, "g": [1, 2, 2], "y": [0.1, 0.2, 0.3]})


ZERO_SIZE = """
data N: int
param z: real[N] ~ normal(0, 1)
param mu ~ normal(0, 1)
gen w = z * 2
gen m = mu + 1
"""


def test_a_zero_size_param_samples_as_an_empty_array(tmp_path):
    # Stan's empty arrays: `real[N]` with N = 0 is a param with no components; the
    # per-draw pass once split its (draws, 0) leaves into batches and divided by zero
    path = tmp_path / "zero.fpl"
    path.write_text(ZERO_SIZE)
    fit = fpl.load(path).sample({"N": 0}, chains=2, warmup=100, draws=50, seed=3, progress=False)
    draws = fit.draws()
    assert draws["z"].shape == (2, 50, 0) and draws["w"].shape == (2, 50, 0)
    # the non-empty parts are computed as usual: the gen follows its param exactly
    np.testing.assert_array_equal(draws["m"], draws["mu"] + 1)


NO_SOLUTION = """param a ~ normal(0, 1)
let z = fix z: real = z + 1 + exp(a) with iterate(max_iter=50)
param b ~ normal(z, 1)
"""


def test_a_node_with_no_solution_anywhere_is_named_by_e0402(tmp_path):
    # z = z + 1 + exp(a) has no fixed point for any a: every initial point fails, and the
    # error points at the node (line 2) with its residual, not at the whole model
    path = tmp_path / "nosol.fpl"
    path.write_text(NO_SOLUTION)
    with pytest.raises(FplError) as info:
        fpl.load(path).sample({}, chains=1, warmup=10, draws=10, seed=1, progress=False)
    d = info.value.diagnostics[0]
    assert d.code == "E0402"
    assert d.span is not None and d.span.line == 2
    assert "fix" in d.message and "max_iter_reached" in d.message
