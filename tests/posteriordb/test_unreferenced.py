"""posteriordb models without reference draws, ported line by line (issue 13), each
exercising a feature no referenced posterior uses:

- arrays of simplexes: the Gaussian hidden Markov model with K from the data
  (hmm_gaussian) and latent Dirichlet allocation with K = 5 topics (ldaK5);
- eigenvectors_sym / eigenvalues_sym: the Kronecker-structured GP (kronecker_gp), checked
  against the dense route (the full Kronecker covariance and its Cholesky factor);
- the *_glm family: wells_dist100_model and nes_logit_model (bernoulli_logit_glm, flat
  priors), wells_dist (the same logistic regression without the GLM function) and the
  regularised horseshoe logistic_regression_rhs (on simulated data);
- brms's mcycle models: accel_splines, and the density of accel_gp (a referenced
  posterior: test_posteriordb.py samples it against posteriordb's summaries).

Their log densities are checked against independent NumPy/SciPy evaluations written
from the Stan code, their gradients against finite differences; LDA is sampled on data
simulated with 5 topics and must recover them (up to their order), and wells_dist100
(through the GLM function) must sample the exact posterior, computed by quadrature."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy import linalg, optimize, special, stats

import fpl

HERE = Path(__file__).parent / "unreferenced"


def _hmm_reference(values, y) -> float:
    """Stan's forward loops of hmm_gaussian, element by element (no Jacobian)."""
    A, pi1, mu, sigma = (np.asarray(values[k]) for k in ("A", "pi1", "mu", "sigma"))
    K = len(mu)
    logalpha = np.log(pi1) + stats.norm.logpdf(y[0], mu, sigma)
    for t in range(1, len(y)):
        logalpha = np.array(
            [
                special.logsumexp([logalpha[i] + np.log(A[i, j]) for i in range(K)])
                + stats.norm.logpdf(y[t], mu[j], sigma[j])
                for j in range(K)
            ]
        )
    return float(special.logsumexp(logalpha))


def check_density(
    cm,
    reference,
    n_points: int = 2,
    seed: int = 0,
    center=None,
    spread: float = 0.5,
    coordinates: tuple[int, ...] = (),
    n_random: int = 6,
) -> None:
    """The log density (no Jacobian) against ``reference`` (a function of the constrained
    values by name) at ``n_points`` points ``center + spread z`` (unconstrained, z standard
    normal; center 0 unless given), and its gradient against central differences in
    ``n_random`` random coordinates and those listed in ``coordinates`` (also used by
    test_unreferenced_irt_spatial.py)."""
    with jax.enable_x64(True):

        @jax.jit
        def evaluate(theta):
            value, grad = jax.value_and_grad(lambda t: cm.log_density(t))(theta)
            return cm.log_density(theta, jacobian=False), value, grad, cm.constrain(theta)

        rng = np.random.default_rng(seed)
        n = cm.param_unc_num()
        for _ in range(n_points):
            theta = (0 if center is None else center) + spread * rng.normal(size=n)
            plain, _, grad, values = evaluate(theta)
            # float64 both ways, sums of a few thousand terms in different orders
            assert float(plain) == pytest.approx(reference(values), rel=1e-10)
            h = 1e-6
            for i in [*rng.choice(n, size=min(n, n_random), replace=False), *coordinates]:
                e = np.zeros(n)
                e[i] = h
                fd = (float(evaluate(theta + e)[1]) - float(evaluate(theta - e)[1])) / (2 * h)
                # central differences: error O(h^2) + O(eps |lp| / h) ~ 1e-7 at |lp| ~ 1e3
                assert float(grad[i]) == pytest.approx(fd, rel=1e-5, abs=1e-5), i


def test_gaussian_hmm_with_k_from_the_data():
    model = fpl.load(HERE / "hmm_gaussian_simulated-hmm_gaussian.fpl")
    data = json.loads((HERE / "hmm_gaussian_simulated.json").read_text())
    data = {**data, "T": 60, "y": data["y"][:60]}  # a prefix: the same model, cheaper loops
    cm = model.bind(data)
    K = data["K"]
    assert cm.param_shapes == {"pi1": (K,), "A": (K, K), "mu": (K,), "sigma": (K,)}
    check_density(cm, lambda v: _hmm_reference(v, np.asarray(data["y"])))


def _lda_data(rng, M=30, V=12, per_doc=60):
    """Five topics on distinct word blocks (so they are identifiable), documents mixing
    a few of them."""
    phi = np.full((5, V), 0.02)
    for k in range(5):
        phi[k, [(2 * k) % V, (2 * k + 1) % V, (2 * k + 2) % V]] = [0.45, 0.35, 0.15]
    phi /= phi.sum(1, keepdims=True)
    theta = rng.dirichlet(np.full(5, 0.3), size=M)
    doc = np.repeat(np.arange(M), per_doc)
    z = np.array([rng.choice(5, p=theta[m]) for m in doc])
    w = np.array([rng.choice(V, p=phi[k]) for k in z])
    data = {
        "V": V,
        "M": M,
        "N": len(w),
        "w": w + 1,
        "doc": doc + 1,
        "alpha": np.full(5, 0.5),
        "beta": np.full(V, 0.5),
    }
    return phi, theta, data


def _lda_reference(values, data) -> float:
    """Stan's ldaK5 loops (no Jacobian)."""
    theta, phi = np.asarray(values["theta"]), np.asarray(values["phi"])
    lp = sum(stats.dirichlet.logpdf(t, data["alpha"]) for t in theta)
    lp += sum(stats.dirichlet.logpdf(p, data["beta"]) for p in phi)
    for n in range(data["N"]):
        m, v = data["doc"][n] - 1, data["w"][n] - 1
        lp += special.logsumexp([np.log(theta[m, k]) + np.log(phi[k, v]) for k in range(5)])
    return float(lp)


def test_lda_log_density_and_gradient():
    _, _, data = _lda_data(np.random.default_rng(1), M=4, V=6, per_doc=10)
    cm = fpl.load(HERE / "ldaK5.fpl").bind(data)
    assert cm.param_shapes == {"theta": (4, 5), "phi": (5, 6)}
    check_density(cm, lambda v: _lda_reference(v, data), n_points=1)


@pytest.mark.slow
def test_lda_recovers_simulated_topics():
    phi, _, data = _lda_data(np.random.default_rng(2), M=20, per_doc=50)
    fit = fpl.load(HERE / "ldaK5.fpl").sample(
        data, chains=1, warmup=200, draws=200, seed=3, progress=False
    )
    # one chain: the topics' labels do not switch within it (their order is arbitrary, so
    # the estimate is matched to the truth by the best assignment)
    est = np.asarray(fit.draws("phi")).reshape(-1, 5, data["V"]).mean(0)
    cost = np.abs(est[:, None, :] - phi[None, :, :]).sum(-1)
    rows, cols = optimize.linear_sum_assignment(cost)
    # 1000 words, ~200 per topic: each word's share is estimated to about
    # sqrt(0.45 * 0.55 / 200) ~ 0.035; "roughly" is a total variation under 0.2 per topic
    # (a topic confused with another has total variation ~0.9)
    assert np.all(0.5 * cost[rows, cols] < 0.2), 0.5 * cost[rows, cols]


# ---- eigenvectors_sym / eigenvalues_sym: the Kronecker-structured GP ------------------


def _lkj_corr_cholesky_logpdf(L, eta: float) -> float:
    """log LKJ(L L' | eta) in the Cholesky factor (Lewandowski, Kurowicka and Joe 2009):
    sum_k (K - k + 2 eta - 2) log L_kk - log c_K, with the constant of their theorem
    c_K = 2^(sum_j (2 eta - 2 + K - j)(K - j)) prod_j B(b_j, b_j)^(K - j),
    b_j = eta + (K - j - 1) / 2, j = 1..K-1."""
    K = L.shape[0]
    k = np.arange(2, K + 1)
    kernel = np.sum((K - k + 2 * eta - 2) * np.log(np.diag(L)[1:]))
    j = np.arange(1, K)
    b = eta + (K - j - 1) / 2
    log_c = np.sum((2 * eta - 2 + K - j) * (K - j)) * np.log(2) + np.sum(
        (K - j) * special.betaln(b, b)
    )
    return float(kernel - log_c)


def _kronecker_gp_reference(values, data) -> float:
    """kronecker_gp by the direct route: the full (n1 n2) x (n1 n2) covariance
    Sigma1 (x) Lambda + sigma1 I as a Kronecker product, its dense Cholesky factor, and
    vec(y) column by column (Stan's column-major vec of the n2 x n1 matrix y)."""
    var1, bw1, sigma1 = (float(values[k]) for k in ("var1", "bw1", "sigma1"))
    L = np.asarray(values["L"])
    n1, y = data["n1"], np.asarray(data["y"])
    x = np.asarray(data["x1"])[:n1]
    Sigma1 = var1 * np.exp(-bw1 * (x[:, None] - x[None, :]) ** 2) + 1e-5 * np.eye(n1)
    K = np.kron(Sigma1, L @ L.T) + sigma1 * np.eye(y.size)
    C = np.linalg.cholesky(K)
    whitened = linalg.solve_triangular(C, y.ravel(order="F"), lower=True)
    likelihood = -0.5 * whitened @ whitened - np.sum(np.log(np.diag(C)))
    return float(
        likelihood
        + stats.lognorm.logpdf(var1, 1.0)
        + stats.cauchy.logpdf(bw1, 0, 2.5)
        + stats.lognorm.logpdf(sigma1, 1.0)
        + _lkj_corr_cholesky_logpdf(L, 2.0)
    )


@functools.cache
def _kronecker_gp():
    name = "synthetic_grid_RBF_kernels"
    data = json.loads((HERE / f"{name}.json").read_text())
    return fpl.load(HERE / f"{name}-kronecker_gp.fpl").bind(data), data


def test_kronecker_gp_matches_the_dense_covariance():
    cm, data = _kronecker_gp()
    assert cm.param_shapes == {"var1": (), "bw1": (), "L": (30, 30), "sigma1": ()}
    # the derivatives in var1 and bw1 (through eigenvectors_sym(Sigma1), whose clustered
    # eigenvalues it treats as degenerate: the test below), sigma1 (the last coordinate)
    # and random ones of L (through eigenvectors_sym(Lambda)); all 438 would add ~12 s
    n = cm.param_unc_num()
    check_density(cm, lambda v: _kronecker_gp_reference(v, data), coordinates=(0, 1, n - 1))


def test_kronecker_gp_gradient_in_the_kernel_parameters():
    # Sigma1's eigenvalues cluster at the 1e-5 jitter ~1e-9 apart: eigh's rule (Stan's)
    # divided rounding by those gaps (d lp / d log(var1) was -12.12 against -11.76);
    # eigenvectors_sym holds a cluster's basis fixed (fpl.stdlib.functions.linalg._eigh),
    # exact for this spectral density; central differences, h = 1e-6: ~1e-8 relative
    cm, _ = _kronecker_gp()
    n = cm.param_unc_num()
    with jax.enable_x64(True):
        log_density = jax.jit(cm.log_density)
        theta = 0.5 * np.random.default_rng(0).normal(size=n)
        grad = jax.grad(log_density)(theta)
        h = 1e-6
        for i in (0, 1):  # var1, bw1
            e = np.zeros(n)
            e[i] = h
            fd = (float(log_density(theta + e)) - float(log_density(theta - e))) / (2 * h)
            assert float(grad[i]) == pytest.approx(fd, rel=1e-5, abs=1e-5)


# ---- the *_glm family: logistic regressions with bernoulli_logit_glm -------------------


def _bernoulli_logit_loglik(eta, y) -> float:
    """sum_n y_n eta_n - log(1 + exp(eta_n)): Stan's bernoulli_logit, from its definition."""
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def _wells_data() -> dict:
    return json.loads((HERE / "wells_data.json").read_text())


def test_wells_dist100_glm_and_wells_dist_without_it():
    """wells_dist100_model (bernoulli_logit_glm on dist / 100) and wells_dist (plain
    bernoulli_logit on dist), both against the same NumPy log likelihood (flat priors)."""
    data = _wells_data()
    y, dist = np.asarray(data["switched"]), np.asarray(data["dist"])
    glm = fpl.load(HERE / "wells_data-wells_dist100_model.fpl").bind(data)
    assert glm.param_shapes == {"alpha": (), "beta": (1,)}
    check_density(
        glm,
        lambda v: _bernoulli_logit_loglik(v["alpha"] + v["beta"][0] * dist / 100, y),
        n_points=2,
    )
    plain = fpl.load(HERE / "wells_data-wells_dist.fpl").bind(data)
    assert plain.param_shapes == {"beta": (2,)}
    check_density(
        plain,
        lambda v: _bernoulli_logit_loglik(v["beta"][0] + v["beta"][1] * dist, y),
        n_points=2,
    )


def test_nes_logit_glm():
    data = json.loads((HERE / "nes_logit_data.json").read_text())
    y, income = np.asarray(data["vote"]), np.asarray(data["income"])
    cm = fpl.load(HERE / "nes_logit_data-nes_logit_model.fpl").bind(data)
    assert cm.param_shapes == {"alpha": (), "beta": (1,)}
    check_density(cm, lambda v: _bernoulli_logit_loglik(v["alpha"] + v["beta"][0] * income, y))


def _logistic_posterior_moments(X, y, half_width: float = 8.0, points: int = 161):
    """Exact posterior mean and sd of a flat-prior logistic regression with few
    coefficients, by quadrature: a regular grid over +-half_width sds of the Laplace
    approximation (the maximum likelihood estimate and the inverse of X' W X), in its
    whitened coordinates; the mass beyond 8 sds of a near-normal posterior is ~1e-15 and
    the rule on a 0.1-sd grid is exact to far below the sampling error."""
    fit = optimize.minimize(
        lambda b: -_bernoulli_logit_loglik(X @ b, y),
        np.zeros(X.shape[1]),
        jac=lambda b: -X.T @ (y - special.expit(X @ b)),
        method="BFGS",
        options={"gtol": 1e-10},
    )
    p = special.expit(X @ fit.x)
    factor = np.linalg.cholesky(np.linalg.inv(X.T @ (X * (p * (1 - p))[:, None])))
    axis = np.linspace(-half_width, half_width, points)
    grid = np.stack(np.meshgrid(*[axis] * X.shape[1], indexing="ij"), -1).reshape(-1, X.shape[1])
    coefficients = fit.x + grid @ factor.T
    eta = coefficients @ X.T
    log_post = np.sum(y * eta - np.logaddexp(0.0, eta), axis=1)
    weight = np.exp(log_post - log_post.max())
    weight /= weight.sum()
    mean = weight @ coefficients
    sd = np.sqrt(weight @ (coefficients - mean) ** 2)
    return mean, sd


@pytest.mark.slow
def test_wells_dist100_glm_samples_the_exact_posterior():
    data = _wells_data()
    y = np.asarray(data["switched"])
    X = np.column_stack([np.ones(len(y)), np.asarray(data["dist"]) / 100])
    mean, sd = _logistic_posterior_moments(X, y)
    fit = fpl.load(HERE / "wells_data-wells_dist100_model.fpl").sample(
        data, chains=2, warmup=300, draws=500, seed=4, progress=False
    )
    summary = fit.summary()
    for k, component in enumerate(("alpha", "beta[1]")):
        row = summary[component]
        assert row.r_hat < 1.01, (component, row.r_hat)
        # the mean within 4 Monte Carlo standard errors (ESS ~ 1000 here: 0.03 sds each)
        assert abs(row.mean - mean[k]) <= 4 * row.mcse, (component, row.mean, mean[k], row.mcse)
        # an sd estimate's relative error is ~ 1 / sqrt(2 ESS) ~ 0.02: 10 % is 4 of them
        assert row.sd == pytest.approx(sd[k], rel=0.1), (component, row.sd, sd[k])


def _rhs_data(rng, n=40, d=12, nonzero=3) -> dict:
    """A sparse logistic regression: `nonzero` of d coefficients away from 0; the prior
    settings of posteriordb's ovarian data but scale_global from the rule it was set by,
    p0 / (d - p0) / sqrt(n) (Piironen and Vehtari 2017)."""
    x = rng.normal(size=(n, d))
    beta = np.zeros(d)
    beta[:nonzero] = [2.0, -1.5, 1.0]
    y = (rng.uniform(size=n) < special.expit(0.3 + x @ beta)).astype(int)
    return {
        "n": n,
        "d": d,
        "y": y,
        "x": x,
        "scale_icept": 5.0,
        "scale_global": nonzero / (d - nonzero) / np.sqrt(n),
        "nu_global": 1.0,
        "nu_local": 1.0,
        "slab_scale": 2.0,
        "slab_df": 100.0,
    }


def _rhs_beta(values, data):
    """Stan's transformed parameters of logistic_regression_rhs."""
    tau, lam, caux = float(values["tau"]), np.asarray(values["lambda"]), float(values["caux"])
    c = data["slab_scale"] * np.sqrt(caux)
    lambda_tilde = np.sqrt(c**2 * lam**2 / (c**2 + tau**2 * lam**2))
    return np.asarray(values["z"]) * lambda_tilde * tau


def _rhs_reference(values, data) -> float:
    """logistic_regression_rhs's model block term by term (no Jacobian)."""
    z, lam = np.asarray(values["z"]), np.asarray(values["lambda"])
    beta0, tau, caux = (float(values[k]) for k in ("beta0", "tau", "caux"))
    half_df = 0.5 * data["slab_df"]
    prior = (
        stats.norm.logpdf(z).sum()
        + stats.t.logpdf(lam, data["nu_local"]).sum()
        + stats.t.logpdf(tau, data["nu_global"], 0, 2 * data["scale_global"])
        + stats.invgamma.logpdf(caux, half_df, scale=half_df)
        + stats.norm.logpdf(beta0, 0, data["scale_icept"])
    )
    eta = beta0 + data["x"] @ _rhs_beta(values, data)
    return float(prior) + _bernoulli_logit_loglik(eta, data["y"])


def test_regularised_horseshoe_with_bernoulli_logit_glm():
    data = _rhs_data(np.random.default_rng(5))
    cm = fpl.load(HERE / "logistic_regression_rhs.fpl").bind(data)
    d = data["d"]
    assert cm.param_shapes == {"beta0": (), "z": (d,), "tau": (), "lambda": (d,), "caux": ()}
    check_density(cm, lambda v: _rhs_reference(v, data))
    with jax.enable_x64(True):
        theta = 0.5 * np.random.default_rng(6).normal(size=cm.param_unc_num())
        values = cm.generate(theta, jax.random.key(0))
    beta = _rhs_beta(values, data)
    np.testing.assert_allclose(values["beta"], beta, rtol=1e-12)
    eta = float(values["beta0"]) + data["x"] @ beta
    np.testing.assert_allclose(values["f"], eta, rtol=1e-12, atol=1e-12)
    # the pointwise GLM log likelihood, one value per observation (Stan's log_lik loop)
    y = data["y"]
    np.testing.assert_allclose(values["log_lik"], y * eta - np.logaddexp(0, eta), rtol=1e-12)


# ---- mcycle: brms's approximate GP (accel_gp, with reference draws) and splines ---------

MCYCLE_GP = HERE.parent / "models" / "mcycle_gp-accel_gp.fpl"
MCYCLE_GP_DATA = HERE.parent / "data" / "mcycle_gp-accel_gp"

#: -student_t_lccdf(0 | 3, 0, 36): the half-t's normalisation the brms code adds
LOG_HALF = np.log(2.0)


def _brms_gp(X, slambda, sdgp, lscale, z):
    """brms's gpa: X (sqrt(spd) .* z), spd the squared-exponential kernel's spectral
    density sdgp^2 (sqrt(2 pi) lscale)^D exp(-lscale^2 |s|^2 / 2) at each row s."""
    D = slambda.shape[1]
    spd = (
        sdgp**2
        * (np.sqrt(2 * np.pi) * lscale) ** D
        * np.exp(-0.5 * lscale**2 * (slambda**2).sum(1))
    )
    return X @ (np.sqrt(spd) * z)


def _accel_gp_reference(v, data) -> float:
    """accel_gp's model block term by term."""
    a = {k: np.asarray(data[k], dtype=float) for k in data if isinstance(data[k], list)}
    mu = v["Intercept"] + _brms_gp(
        a["Xgp_1"], a["slambda_1"], v["sdgp_1"], v["lscale_1"], np.asarray(v["zgp_1"])
    )
    log_sigma = v["Intercept_sigma"] + _brms_gp(
        a["Xgp_sigma_1"],
        a["slambda_sigma_1"],
        v["sdgp_sigma_1"],
        v["lscale_sigma_1"],
        np.asarray(v["zgp_sigma_1"]),
    )
    lp = stats.t.logpdf(v["Intercept"], 3, -13, 36) + stats.t.logpdf(v["Intercept_sigma"], 3, 0, 10)
    for sd, z, lscale in (
        ("sdgp_1", "zgp_1", "lscale_1"),
        ("sdgp_sigma_1", "zgp_sigma_1", "lscale_sigma_1"),
    ):
        lp += stats.t.logpdf(v[sd], 3, 0, 36) + LOG_HALF
        lp += stats.norm.logpdf(np.asarray(v[z])).sum()
        lp += stats.invgamma.logpdf(v[lscale], 1.124909, scale=0.0177)
    return float(lp + stats.norm.logpdf(a["Y"], mu, np.exp(log_sigma)).sum())


def test_mcycle_accel_gp_log_density():
    data = json.loads((MCYCLE_GP_DATA / "data.json").read_text())
    reference = json.loads((MCYCLE_GP_DATA / "reference.json").read_text())["components"]
    cm = fpl.load(MCYCLE_GP).bind(data)
    # about the reference posterior's means: far from them (a length-scale ~1, 12 prior
    # sds out) the spectral density underflows to 0 and sqrt's derivative there is
    # infinite, in Stan as here
    means = np.array([c["mean"] for c in reference.values()])
    with jax.enable_x64(True):
        center = np.asarray(cm.param_unconstrain(means))
    # spread 0.1: 0.5 on all 66 coordinates moves log sigma by several units at some
    # times, and there |lp| ~ 1e11 leaves central differences exact to eps |lp| / h ~ 10
    check_density(cm, lambda v: _accel_gp_reference(v, data), center=center, spread=0.1)


def _accel_splines_reference(v, data) -> float:
    """accel_splines's model block term by term."""
    a = {k: np.asarray(data[k], dtype=float) for k in data if isinstance(data[k], list)}
    s = v["sds_1_1"] * np.asarray(v["zs_1_1"])
    s_sigma = v["sds_sigma_1_1"] * np.asarray(v["zs_sigma_1_1"])
    mu = v["Intercept"] + a["Xs"] @ np.asarray(v["bs"]) + a["Zs_1_1"] @ s
    log_sigma = (
        v["Intercept_sigma"]
        + a["Xs_sigma"] @ np.asarray(v["bs_sigma"])
        + a["Zs_sigma_1_1"] @ s_sigma
    )
    lp = stats.t.logpdf(v["Intercept"], 3, -13, 36) + stats.t.logpdf(v["Intercept_sigma"], 3, 0, 10)
    for sd, z in (("sds_1_1", "zs_1_1"), ("sds_sigma_1_1", "zs_sigma_1_1")):
        lp += stats.t.logpdf(v[sd], 3, 0, 36) + LOG_HALF + stats.norm.logpdf(np.asarray(v[z])).sum()
    return float(lp + stats.norm.logpdf(a["Y"], mu, np.exp(log_sigma)).sum())


def test_mcycle_accel_splines_log_density():
    data = json.loads((HERE / "mcycle_splines.json").read_text())
    cm = fpl.load(HERE / "mcycle_splines-accel_splines.fpl").bind(data)
    assert cm.param_shapes["zs_1_1"] == (data["knots_1"],)
    check_density(cm, lambda v: _accel_splines_reference(v, data))
