"""Simulate the data files of the example models (fixed seeds, reproducible).

Run from anywhere: ``python examples/make_data.py``. Each simulated example gets
``<name>.json`` (CmdStan-style data) beside its ``.fpl``; the data-generating parameter
values are written to ``tests/examples/truths.json``, which the example tests compare
posterior means against. eight_schools.json is the classic data and is not generated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
TRUTHS = HERE.parent / "tests" / "examples" / "truths.json"


def r(x, nd=6):
    return np.round(np.asarray(x, float), nd).tolist()


def linear_regression(rng):
    N, K = 100, 3
    alpha, beta, sigma = 1.5, np.array([2.0, -1.0, 0.5]), 0.7
    X = rng.normal(size=(N, K))
    y = alpha + X @ beta + sigma * rng.normal(size=N)
    data = {"N": N, "K": K, "X": r(X), "y": r(y)}
    truth = {"alpha": alpha, "beta": beta.tolist(), "sigma": sigma}
    return data, truth


def radon_hierarchical(rng):
    J, N = 12, 300
    mu_a, sigma_a, b, sigma_y = 1.3, 0.5, -0.7, 0.8
    a = mu_a + sigma_a * rng.normal(size=J)
    county = np.concatenate([np.arange(J), rng.integers(0, J, size=N - J)])
    floor = rng.binomial(1, 0.4, size=N)
    y = a[county] + b * floor + sigma_y * rng.normal(size=N)
    data = {
        "N": N,
        "J": J,
        "county": (county + 1).tolist(),
        "floor": floor.tolist(),
        "log_radon": r(y),
    }
    truth = {"mu_a": mu_a, "sigma_a": sigma_a, "b": b, "sigma_y": sigma_y, "a": r(a)}
    return data, truth


def logistic_regression(rng):
    N, K = 400, 2
    alpha, beta = -0.5, np.array([1.2, -0.8])
    X = rng.normal(size=(N, K))
    p = 1 / (1 + np.exp(-(alpha + X @ beta)))
    y = rng.binomial(1, p)
    data = {"N": N, "K": K, "X": r(X), "y": y.tolist()}
    truth = {"alpha": alpha, "beta": beta.tolist()}
    return data, truth


def poisson_regression(rng):
    N, K = 200, 2
    alpha, beta = 0.3, np.array([0.6, -0.4])
    X = rng.normal(size=(N, K))
    exposure = rng.uniform(0.5, 2.0, size=N)
    y = rng.poisson(exposure * np.exp(alpha + X @ beta))
    data = {"N": N, "K": K, "X": r(X), "exposure": r(exposure), "y": y.tolist()}
    truth = {"alpha": alpha, "beta": beta.tolist()}
    return data, truth


def garch11(rng):
    T = 600
    mu, alpha0, alpha1, beta1 = 0.05, 0.1, 0.15, 0.75
    sigma1 = float(np.sqrt(alpha0 / (1 - alpha1 - beta1)))
    y = np.empty(T)
    s = sigma1
    for t in range(T):
        if t > 0:
            s = np.sqrt(alpha0 + alpha1 * (y[t - 1] - mu) ** 2 + beta1 * s**2)
        y[t] = mu + s * rng.normal()
    data = {"T": T, "y": r(y), "sigma1": round(sigma1, 6)}
    truth = {"mu": mu, "alpha0": alpha0, "alpha1": alpha1, "beta1": beta1}
    return data, truth


def ar1(rng):
    T = 300
    mu, phi, sigma = 2.0, 0.6, 0.5
    y = np.empty(T)
    y[0] = mu + sigma / np.sqrt(1 - phi**2) * rng.normal()
    for t in range(1, T):
        y[t] = mu + phi * (y[t - 1] - mu) + sigma * rng.normal()
    data = {"T": T, "y": r(y)}
    truth = {"mu": mu, "phi": phi, "sigma": sigma}
    return data, truth


def _calibration_fixed_point(a, b, A, u):
    """x = tanh(a A x + b u) by plain iteration (a contraction: a ||A|| < 1)."""
    x = np.zeros(len(u))
    for _ in range(2000):
        x = np.tanh(a * (A @ x) + b * u)
    return x


def equilibrium_calibration(rng):
    n = 20
    a, b = 0.8, 0.5
    A = rng.normal(size=(n, n))
    A = 0.6 * A / np.linalg.norm(A, 2)  # spectral norm 0.6 (< 1, as LANGUAGE.md §5 asks)
    u = rng.normal(size=n)
    x = _calibration_fixed_point(a, b, A, u)
    y = x + 0.1 * rng.normal(size=n)
    data = {"n": n, "A": r(A), "u": r(u), "y": r(y)}
    truth = {"a": a, "b": b}
    return data, truth


def market_equilibrium(rng):
    M, K = 8, 3
    e = np.array([0.6, 1.0, 1.5])  # own-price demand elasticities (inferred)
    eta, c, sigma = 1.0, 0.4, 0.05  # supply elasticity and price-index elasticity (known)
    log_d = rng.normal(scale=0.5, size=(M, K))
    log_s = rng.normal(scale=0.2, size=K)
    # log demand - log supply = 0  <=>  Q = (log_d - log_s + c log(mean(exp(Q)))) / (e + eta),
    # a contraction (c / (e + eta) < 1 and log-mean-exp is 1-Lipschitz in the max norm).
    Q = np.zeros((M, K))
    for _ in range(500):
        index = np.log(np.mean(np.exp(Q), axis=1, keepdims=True))
        Q = (log_d - log_s + c * index) / (e + eta)
    log_price = Q + sigma * rng.normal(size=(M, K))
    data = {"M": M, "K": K, "log_d": r(log_d), "log_s": r(log_s), "eta": eta, "c": c,
            "log_price": r(log_price)}
    truth = {"e": e.tolist(), "sigma": sigma}
    return data, truth


def recursion_fixed_point(rng):
    T = 40
    rho, beta, sigma, x0 = 0.7, 0.8, 0.1, 0.0
    u = rng.normal(size=T)
    x = np.empty(T)
    prev = x0
    for t in range(T):
        prev = x[t] = np.tanh(rho * prev + beta * u[t])
    y = x + sigma * rng.normal(size=T)
    data = {"T": T, "x0": x0, "u": r(u), "y": r(y)}
    truth = {"rho": rho, "beta": beta, "sigma": sigma}
    return data, truth


SIMULATIONS = {
    "linear_regression": (linear_regression, 101),
    "radon_hierarchical": (radon_hierarchical, 102),
    "logistic_regression": (logistic_regression, 103),
    "poisson_regression": (poisson_regression, 104),
    "garch11": (garch11, 105),
    "ar1": (ar1, 106),
    "equilibrium_calibration": (equilibrium_calibration, 107),
    "market_equilibrium": (market_equilibrium, 108),
    "recursion_fixed_point": (recursion_fixed_point, 109),
}


def main():
    truths = {}
    for name, (simulate, seed) in SIMULATIONS.items():
        data, truth = simulate(np.random.default_rng(seed))
        (HERE / f"{name}.json").write_text(json.dumps(data) + "\n")
        truths[name] = truth
    TRUTHS.write_text(json.dumps(truths, indent=1) + "\n")


if __name__ == "__main__":
    main()
