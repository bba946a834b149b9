"""The SVI loop of ``Model.vi``: step-size adaptation, the chunks with their ELBO
estimates and Stan's relative-ELBO convergence test, tail averaging, and the draws from
the fitted guide with their log densities (the maths is in ``fpl.runtime.vi``'s
docstring)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fpl.dsl.diagnostics import error
from fpl.runtime.loop import Early
from fpl.runtime.vi_start import PREFIX, SITE, Start
from fpl.stdlib.lazy import LazyModule

jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")

#: the convergence window holds this share of the most evaluations ``steps`` allows
#: (Stan's ``cb_size``), and at least ``MIN_WINDOW`` changes
WINDOW_SHARE = 0.1
MIN_WINDOW = 2


class SVIRun:
    """One SVI run: the NumPyro SVI object, its current state and what the loop has
    recorded (losses per step, ELBO estimates, relative changes).  Owned by one
    ``vi`` call; its compiled functions close over nothing mutable."""

    def __init__(self, model, guide, optim, settings, args, seed: int) -> None:
        from numpyro.infer import SVI, Trace_ELBO

        self.settings, self.args = settings, args
        self.svi = SVI(model, guide, optim, Trace_ELBO(num_particles=settings.particles))
        self.guide = guide
        run_key, self.adapt_key, self.eval_key = jax.random.split(jax.random.PRNGKey(seed), 3)
        self.state = self.svi.init(run_key, args)
        svi, optim_params = self.svi, self.svi.optim.get_params

        def chunk(state, a, n, length):
            """``n`` steps as one program of ``length`` (the steps from ``n`` on idle:
            state, key included, and sums pass through unchanged, so a short chunk equals
            a program of its own length, and a run compiles one); the losses (``length``
            of them, the first ``n`` meaningful) and the mean unconstrained guide
            parameters of the ``n`` steps."""

            def update(state):
                state, loss = svi.update(state, a)
                return state, loss

            def idle(state):
                return state, jnp.zeros((), loss_type)

            def step(carry, i):
                state, total = carry
                state, loss = jax.lax.cond(i < n, update, idle, state)
                params = optim_params(state.optim_state)
                total = jax.tree.map(lambda t, p: jnp.where(i < n, t + p, t), total, params)
                return (state, total), loss

            loss_type = jax.eval_shape(svi.update, state, a)[1].dtype
            zero = jax.tree.map(jnp.zeros_like, optim_params(state.optim_state))
            (state, total), losses = jax.lax.scan(step, (state, zero), jnp.arange(length))
            return state, losses, jax.tree.map(lambda t: t / n, total)

        elbo_loss = Trace_ELBO(num_particles=settings.elbo_draws)
        #: the one compiled chunk length: ``eval_elbo`` steps (the adaptation's too)
        self.length = settings.eval_elbo
        self._chunk = jax.jit(chunk, static_argnums=3)
        self._elbo = jax.jit(lambda key, p, a: -elbo_loss.loss(key, p, model, guide, a))
        self.losses: list[np.ndarray] = []
        self.means: list[tuple[int, Any]] = []  # per chunk: its steps, its mean parameters
        s = settings
        self.window = max(MIN_WINDOW, int(WINDOW_SHARE * s.steps / s.eval_elbo))
        self.elbos = [self._estimate(self.svi.get_params(self.state), self.adapt_key)]
        self.changes: list[float] = []
        self.converged = False

    # ---- the step size ------------------------------------------------------------
    def adapt(self, step_size: float | None) -> float:
        """Set ``η``: ``step_size`` if given, else the best of ``STEP_SIZES`` after
        ``eval_elbo`` steps each from the start (same draws for every ELBO estimate);
        the run goes on from the best one's state."""
        from fpl.runtime.vi import STEP_SIZES, _with_step_size

        params = self.svi.get_params
        if step_size is not None:
            self.state = _with_step_size(self.state, step_size)
            return step_size
        best = None
        for eta in STEP_SIZES:
            state = _with_step_size(self.state, eta)
            state, _, _ = self._chunk(state, self.args, self.length, self.length)
            elbo = self._estimate(params(state), self.adapt_key)
            if math.isfinite(elbo) and (best is None or elbo > best[0]):
                best = (elbo, eta, state)
        if best is None:
            raise error(
                "E0409",
                "variational inference failed: no step size gives a finite ELBO from the start",
                help="the start may be far from the posterior's bulk: give `init` values, or "
                "another `start`",
            )
        elbo, eta, self.state = best
        self.elbos.append(elbo)
        return eta

    # ---- the loop -----------------------------------------------------------------
    def advance(self, done: int, n: int) -> str | Early:
        """``n`` steps, then the ELBO estimate and the convergence test (the callback
        of ``loop.run_chunks``)."""
        state, losses, mean = self._chunk(self.state, self.args, n, self.length)
        unconstrained = self.svi.optim.get_params(state.optim_state)
        bad = [k for k, v in unconstrained.items() if not np.all(np.isfinite(np.asarray(v)))]
        if bad:
            raise error(
                "E0409",
                f"variational inference diverged: non-finite values in {', '.join(sorted(bad))}",
                help="give a smaller `step_size`, more `particles`, or `init` values; a "
                "param whose posterior the guide cannot cover may also cause this",
            )
        self.state = state
        self.means = [*self.means[-self.window + 1 :], (n, mean)]
        self.losses.append(np.asarray(losses)[:n])
        key = jax.random.fold_in(self.eval_key, done)
        elbo = self._estimate(self.svi.get_params(state), key)
        previous = self.elbos[-1]
        self.elbos.append(elbo)
        # relative to max(|E|, 1): an ELBO near 0 (a posterior whose evidence is near 1)
        # would otherwise never meet a relative tolerance
        change = abs(elbo - previous) / max(abs(previous), 1.0)
        self.changes.append(change if math.isfinite(change) else math.inf)
        text = f"elbo {elbo:.6g}, relative change {change:.2g}"
        window, tol = self.changes[-self.window :], self.settings.tol_rel_obj
        if len(window) == self.window and (np.mean(window) < tol or np.median(window) < tol):
            self.converged = True
            return Early(text, n)
        return text

    def _estimate(self, params, key) -> float:
        value = float(self._elbo(key, params, self.args))
        return value if not math.isnan(value) else -math.inf

    # ---- results ------------------------------------------------------------------
    def final_params(self) -> dict[str, Any]:
        """The guide's (and weights') parameters, unconstrained, averaged over the steps
        of the convergence window (its last ``window`` chunks), then constrained."""
        total = sum(n for n, _ in self.means)
        mean = jax.tree.map(
            lambda *m: sum(n * x for (n, _), x in zip(self.means, m, strict=True)) / total,
            *(m for _, m in self.means),
        )
        return self.svi.constrain_fn(mean)

    def elbo(self, params, final: bool = False) -> float:
        """The ELBO at ``params`` with ``elbo_draws`` draws."""
        return self._estimate(params, jax.random.fold_in(self.eval_key, 2**31 - 1 if final else 0))

    def trace(self) -> np.ndarray:
        """The one-sample ELBO estimate of every step of the run (after adaptation)."""
        return -np.concatenate(self.losses) if self.losses else np.zeros(0)

    def last_change(self) -> float:
        return float(self.changes[-1]) if self.changes else math.inf

    def draws(self, key, params, guide, origin: Start | None, cm, count: int):
        """``count`` draws ``u`` (flat unconstrained, ``cm.ravel`` order) from the fitted
        guide and ``log q(u)`` there (None for ``delta`` and callable guides)."""
        import numpyro.distributions as dist

        if origin is None:  # a callable guide on the one-site-per-param model
            latent = self.guide.sample_posterior(key, params, self.args, sample_shape=(count,))
            names = list(cm.param_unc_shapes)
            u = jax.vmap(lambda x: cm.ravel({k: x[k] for k in names}))(latent)
            return np.asarray(u), None
        if guide == "delta":
            z = jnp.broadcast_to(params[f"{SITE}_{PREFIX}_loc"], (count, origin.mean.size))
            return np.asarray(origin.to_unconstrained(z)), None
        if guide == "normal":
            loc, scale = params[f"{SITE}_{PREFIX}_loc"], params[f"{SITE}_{PREFIX}_scale"]
            posterior = dist.Normal(loc, scale).to_event(1)
        else:
            posterior = self.guide.get_posterior(params)
        z = posterior.sample(key, (count,))
        log_q = posterior.log_prob(z) - origin.log_det  # the density of u = m + A z
        return np.asarray(origin.to_unconstrained(z)), np.asarray(log_q)


__all__ = ["SVIRun"]
