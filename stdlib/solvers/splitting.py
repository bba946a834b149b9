"""Operator splitting for a ``fix`` map written as a proximal map of a forward map,
``z = prox_g(G(z))``: ``forward_backward``, ``douglas_rachford``, ``peaceman_rachford``.

Such a fixed point is a zero of the monotone inclusion (:class:`~fpl.stdlib.solvers.Split`)

    0 in F(z) + dg(z),   F(z) = z - G(z),

and the splitting methods use F and g separately, with a step ``a > 0``:

* forward-backward:  z <- prox_{a g}(z - a F(z)) = prox_{a g}((1 - a) z + a G(z));
  converges for F m-strongly monotone and L-Lipschitz when a < 2 m / L^2 (a = 1 is the
  plain iteration z <- f(z)).
* Douglas-Rachford:  x = prox_{a g}(u);  y = J_{a F}(2 x - u);  u <- u + (y - x);
* Peaceman-Rachford: the same with u <- u + 2 (y - x) (the reflected, unrelaxed form).

J_{a F} = (I + a F)^{-1} is the resolvent of F: y solves (1 + a) y - a G(y) = v, found by
Newton's method (one step when G is affine, as in a monotone DEQ G(z) = W z + c, where
it is the linear solve (I + a (I - W)) y = v + a c of Winston and Kolter 2020).
Douglas-Rachford converges for any a > 0 when F and g are maximal monotone;
Peaceman-Rachford needs F strongly monotone (it is then a contraction and faster).
The iterate reported is x = prox_{a g}(u) (or z), and the residual is that of the
``fix`` itself, ||f(x) - x||, so ``tol`` means what it means for every ``fix`` solver and
the implicit gradient is the usual one at the same fixed point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fpl.stdlib.lazy import jax, jnp
from fpl.stdlib.registry import REGISTRY
from fpl.stdlib.solvers import IterativeSolver, Problem, Solution, drive, norm
from fpl.stdlib.solvers.root import newton_direction

RESOLVENT_STEPS = 50  # Newton steps at most per resolvent (one suffices for affine G)
RESOLVENT_TOL = 1e-13  # relative residual the resolvent's Newton iteration stops at


def _split(problem: Problem):
    if problem.split is None:  # an invariant: the checker admits prox_g(G(z)) maps only
        raise ValueError("a splitting solver needs the map written as prox_g(G(z))")
    return problem.split


def resolvent(forward, step):
    """v -> J_{step F}(v) for F(z) = z - G(z): the y with (1 + step) y - step G(y) = v,
    by Newton's method from a starting point ``y0``."""

    def solve(v, y0):
        def residual(y):
            return (1.0 + step) * y - step * forward(y) - v

        def cond(s):
            y, r, i = s
            return (norm(r) > RESOLVENT_TOL * jnp.maximum(1.0, norm(v))) & (i < RESOLVENT_STEPS)

        def body(s):
            y, r, i = s
            y2 = y + newton_direction(residual, y, r)
            return y2, residual(y2), i + 1

        y, _, _ = jax.lax.while_loop(cond, body, (y0, residual(y0), 0))
        return y

    return solve


@REGISTRY.solver
@dataclass(frozen=True, kw_only=True)
class ForwardBackward(IterativeSolver):
    """Forward-backward splitting of a fix written z = prox_g(G(z)):
    z <- prox_{step g}((1 - step) z + step G(z)); converges for z - G(z) strongly
    monotone and Lipschitz (m, L) when step < 2 m / L^2 (step = 1: plain iteration)."""

    name = "forward_backward"
    kinds = ("fix",)
    splitting = True

    step: float = field(default=0.5, metadata={"min": 0.0})

    def invalid(self) -> str | None:
        return None if self.step > 0 else "`step` must be positive"

    def solve(self, problem: Problem, z0) -> Solution:
        split, a = _split(problem), self.step

        def step(s, k):
            z, g = s
            z2 = split.prox((1.0 - a) * z + a * g, a)
            g2 = split.forward(z2)
            return (z2, g2), norm(split.prox(g2, 1.0) - z2)

        g0 = split.forward(z0)
        r0 = norm(split.prox(g0, 1.0) - z0)
        s, res, it, why = drive(
            step, (z0, g0), lambda s: s[0], r0, self.tol, self.max_iter, problem.unrolled
        )
        return Solution(s[0], res, it, why)


@dataclass(frozen=True, kw_only=True)
class _Reflected(IterativeSolver):
    """Douglas-Rachford (relaxation 1) and Peaceman-Rachford (relaxation 2)."""

    kinds = ("fix",)
    splitting = True
    unrollable = False  # the resolvent's Newton loop is a while loop
    relaxation = 1.0

    step: float = field(default=1.0, metadata={"min": 0.0})

    def invalid(self) -> str | None:
        return None if self.step > 0 else "`step` must be positive"

    def solve(self, problem: Problem, z0) -> Solution:
        split, a = _split(problem), self.step
        lam = self.relaxation
        resolve = resolvent(split.forward, a)

        def measured(x):
            return norm(split.prox(split.forward(x), 1.0) - x)

        def step(s, k):
            u, x = s
            y = resolve(2.0 * x - u, x)
            u2 = u + lam * (y - x)
            x2 = split.prox(u2, a)
            return (u2, x2), measured(x2)

        # u0 with prox_{a g}(u0) = z0 for z0 in g's domain: z0 itself for indicators
        x0 = split.prox(z0, a)
        s, res, it, why = drive(
            step, (z0, x0), lambda s: s[1], measured(x0), self.tol, self.max_iter, False
        )
        return Solution(s[1], res, it, why)


@REGISTRY.solver
@dataclass(frozen=True, kw_only=True)
class DouglasRachford(_Reflected):
    """Douglas-Rachford splitting of a fix written z = prox_g(G(z)): x = prox_{step g}(u),
    y = resolvent of step (I - G) at 2x - u (Newton; one linear solve for affine G),
    u <- u + y - x. Converges for any step > 0 when z - G(z) is monotone."""

    name = "douglas_rachford"
    relaxation = 1.0


@REGISTRY.solver
@dataclass(frozen=True, kw_only=True)
class PeacemanRachford(_Reflected):
    """Peaceman-Rachford splitting of a fix written z = prox_g(G(z)): as
    douglas_rachford with u <- u + 2 (y - x); needs z - G(z) strongly monotone (as in a
    monotone DEQ), where it contracts and is the fastest of the three."""

    name = "peaceman_rachford"
    relaxation = 2.0
