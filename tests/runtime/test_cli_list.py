"""``fpl list``: exit codes, contents, JSON, and no JAX import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fpl.runtime.cli import EXIT_OK, EXIT_USAGE, main
from fpl.stdlib.registry import registry


@pytest.mark.parametrize(
    "kind, sample",
    [
        (
            "distributions",
            ["normal(mu, sigma)", "lkj_corr_cholesky(eta)", "inv_wishart(nu, Sigma)"],
        ),
        ("functions", ["log_sum_exp(x, [y])", "head(x, n: size)", "cholesky_decompose(A)"]),
        ("solvers", ["anderson(", "newton(", "lbfgs("]),
    ],
)
def test_list_text(kind, sample, capsys):
    assert main(["list", kind]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(getattr(registry(), kind))  # one line per entry
    for s in sample:
        assert any(line.startswith(s) for line in lines), s


def test_list_json(capsys):
    assert main(["list", "distributions", "--json"]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == set(registry().distributions)
    assert by_name["poisson"]["forms"] == ["_lpmf", "_lupmf", "_cdf", "_lcdf", "_lccdf", "_rng"]
    assert by_name["beta"]["support"] == "real in (0, 1)"
    assert main(["list", "solvers", "--json"]) == EXIT_OK
    solvers = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert solvers["anderson"]["options"]["memory"] == 20
    assert main(["list", "functions", "--json"]) == EXIT_OK
    fns = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert fns["dot_product"]["category"] == "matrix"
    assert fns["exp"]["summary"] == "Exponential."


def test_list_usage_errors():
    assert main(["list"]) == EXIT_USAGE
    assert main(["list", "models"]) == EXIT_USAGE


def test_list_does_not_import_jax():
    code = (
        "import sys; from fpl.runtime.cli import main; "
        "rc = main(['list', 'functions']); "
        "print('JAX' if 'jax' in sys.modules else 'NOJAX', rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "NOJAX 0", out.stdout + out.stderr
