"""Well-posedness diagnostics of implicit nodes: Model.diagnose and `fpl diagnose`."""

import json

import numpy as np
import pytest

import fpl
from fpl.runtime.cli import main

RNG = np.random.default_rng(2)
N = 4
S = np.eye(N) + 0.3 * RNG.normal(size=(N, N))  # a non-orthogonal similarity: B is non-normal
EIGS = np.array([0.8, -0.5, 0.3, 0.1])
B = S @ np.diag(EIGS) @ np.linalg.inv(S)
C = RNG.normal(size=(N, N))
U = RNG.normal(size=N)
H = C @ C.T + 0.5 * np.eye(N)  # SPD

SRC = """
data n: int
data B: real[n, n]
data C: real[n, n]
data H: real[n, n]
data u: real[n]
param c: real ~ normal(0, 1)
let z = fix z: real[n] = B @ z + c * u
let t = fix t: real[n] = t + u + 0.1 * sin(t) with iterate(max_iter=300)
let r = root r: real[n] of C @ r - c * u
let s = root s: real[n] of (C - C) @ s + s[1] * u - c * u with newton()
let w = argmin w: real[n] of 0.5 * dot_product(w, H @ w) - c * sum(w)
target += sum(z) + sum(r) + sum(w)
"""
DATA = {"n": N, "B": B, "C": C, "H": H, "u": U}


@pytest.fixture(scope="module")
def result():
    return fpl.compile(SRC).diagnose({"c": 0.4}, DATA)


def test_spectral_radius_of_a_linear_fix_is_exact(result):
    z = result[1]
    assert z.kind == "fix" and z.solver == "linear (direct)" and z.converged
    # power iteration: the error after k steps is ~(0.5/0.8)^k, < 1e-20 over the window
    # averaged (steps 100-200), so the radius is exact to round-off
    assert z.spectral_radius == pytest.approx(0.8, rel=1e-9)
    assert not z.ill_posed and not z.no_fixed_point


def test_hutchinson_frobenius_within_its_standard_deviation(result):
    # ||B||_F^2 is estimated by the mean of m = 64 values v'B'Bv (Rademacher v), whose
    # variance is 2 (||M||_F^2 - sum_i M_ii^2) with M = B'B (Hutchinson); the estimate of
    # ||B||_F then has sd ~ sd(||B||_F^2) / (2 ||B||_F).  Four sd: a fixed seed, so the
    # check is deterministic, and it would fail for an estimator off by a factor.
    M = B.T @ B
    fro = np.sqrt(np.trace(M))
    sd = np.sqrt(2 * (np.sum(M * M) - np.sum(np.diag(M) ** 2)) / 64) / (2 * fro)
    assert abs(result[1].frobenius - fro) <= 4 * sd
    assert sd < 0.2 * fro  # the tolerance is informative


def test_map_without_fixed_point_is_detected(result):
    t = result[2]
    # t + u + 0.1 sin(t): every step moves by >= ||u|| - 0.1 sqrt(n) > 0; no fixed point
    assert not t.converged and t.no_fixed_point and t.ill_posed
    assert t.drift > 0.5 * (np.linalg.norm(U) - 0.1 * np.sqrt(N))
    assert "no fixed point" in t.message


def test_singular_root_is_flagged_and_regular_one_is_not(result):
    r, s = result[3], result[4]
    sv = np.linalg.svd(C, compute_uv=False)
    assert r.sigma_min == pytest.approx(sv.min(), rel=1e-10)  # dense SVD: exact
    assert r.sigma_max == pytest.approx(sv.max(), rel=1e-10)
    assert not r.ill_posed and r.condition == pytest.approx(sv.max() / sv.min(), rel=1e-9)
    assert s.ill_posed and "singular" in s.message  # dF/ds = u e_1': rank one


def test_argmin_hessian_range(result):
    w = result[5]
    e = np.linalg.eigvalsh(H)
    assert w.eig_min == pytest.approx(e.min(), rel=1e-10)
    assert w.eig_max == pytest.approx(e.max(), rel=1e-10)
    assert not w.ill_posed


def test_table_names_every_node_with_its_location(result):
    text = str(result)
    for node_id, kind in [(1, "fix"), (2, "fix"), (3, "root"), (4, "root"), (5, "argmin")]:
        assert f"{kind}#{node_id}" in text
    assert "<string>:8:9" in text and "ILL-POSED" in text
    assert {n.node_id for n in result.ill_posed} == {2, 4}


GOOD = """
data n: int
data B: real[n, n]
data u: real[n]
param c: real ~ normal(0, 1)
let z = fix z: real[n] = tanh(B @ z) + c * u
target += sum(z)
"""
BAD = GOOD.replace("tanh(B @ z) + c * u", "z + u + 0.1 * sin(z) with iterate(max_iter=50)")


def test_default_point_is_drawn_like_inits_with_the_seed():
    # the first uniform(-2, 2) candidate on the unconstrained scale (its density is finite)
    a = fpl.compile(GOOD).diagnose(None, {"n": N, "B": 0.5 * B, "u": U}, seed=3)
    expected = np.random.default_rng(3).uniform(-2, 2, size=())
    assert float(a.params["c"]) == pytest.approx(expected, rel=1e-15)


def test_cli_output_and_exit_codes(tmp_path, capsys):
    (tmp_path / "good.fpl").write_text(GOOD)
    (tmp_path / "bad.fpl").write_text(BAD)
    (tmp_path / "d.json").write_text(json.dumps({"n": N, "B": B.tolist(), "u": U.tolist()}))
    (tmp_path / "p.json").write_text(json.dumps({"c": 0.3}))
    d, good, bad = str(tmp_path / "d.json"), str(tmp_path / "good.fpl"), str(tmp_path / "bad.fpl")
    assert main(["diagnose", good, "--data", d, "--params", str(tmp_path / "p.json")]) == 0
    out, err = capsys.readouterr()
    assert "fix#1" in out and "anderson" in out and "radius" in out and err == ""
    assert main(["diagnose", bad, "--data", d]) == 0  # warnings only
    out, err = capsys.readouterr()
    assert "ILL-POSED" in out
    assert "warning[W0401]" in err and "bad.fpl:6:9" in err and "no fixed point" in err
    assert main(["diagnose", bad, "--data", d, "--strict"]) == 1
    capsys.readouterr()
    assert main(["diagnose", good, "--data", d, "--params", str(tmp_path / "nope.json")]) == 1
