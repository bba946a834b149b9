"""docs/reference.md is generated from the registries and must match them."""

from __future__ import annotations

import subprocess
import sys

from fpl.stdlib import docs
from fpl.stdlib.registry import registry


def test_reference_is_up_to_date():
    assert docs.REFERENCE.exists(), "run python -m fpl.stdlib.docs --write"
    assert docs.REFERENCE.read_text() == docs.render(), (
        "docs/reference.md is out of date: run python -m fpl.stdlib.docs --write"
    )


def test_reference_names_every_entry():
    text = docs.render()
    reg = registry()
    for e in reg.distributions.values():
        assert f"`{docs.distribution_signature(e)}`" in text
    for name, e in reg.functions.items():
        assert f"`{docs.function_signature(e)}`" in text, name
    for name in reg.solvers:
        assert f"| `{name}` |" in text


def test_signatures_and_supports():
    reg = registry()
    fns, dists = reg.functions, reg.distributions
    assert docs.function_signature(fns["head"]) == "head(x, n: size)"
    assert docs.function_signature(fns["max"]) == "max(x, [y])"
    assert docs.function_signature(fns["zeros"]) == "zeros(shape...)"
    assert docs.distribution_signature(dists["student_t"]) == "student_t(nu, mu, sigma)"
    assert docs.support_text(dists["uniform"]) == "real in (alpha, beta)"
    assert docs.support_text(dists["binomial"]) == "int in 0..N"
    assert docs.support_text(dists["exponential"]) == "real > 0"
    assert dists["poisson"].forms == ("_lpmf", "_lupmf", "_cdf", "_lcdf", "_lccdf", "_rng")
    assert dists["dirichlet"].forms == ("_lpdf", "_lupdf", "_rng")


def test_rendering_does_not_import_jax():
    code = "import sys, fpl.stdlib.docs as d; d.render(); print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
