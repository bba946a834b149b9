"""Minimisers for ``argmin`` (grad obj(z) = 0): ``lbfgs``, ``gradient_descent``."""

from __future__ import annotations

from dataclasses import dataclass, field

from fpl.stdlib.lazy import jax
from fpl.stdlib.registry import REGISTRY
from fpl.stdlib.solvers import IterativeSolver, Problem, Solution, drive, norm


@REGISTRY.solver
@dataclass(frozen=True, kw_only=True)
class LBFGS(IterativeSolver):
    """L-BFGS with a zoom line search (optax).

    Iterated until ||grad|| meets the tolerance. The zoom line search is a while loop,
    which JAX cannot transpose: ``grad=unrolled`` cannot go through it."""

    name = "lbfgs"
    kinds = ("argmin",)
    unrollable = False

    memory: int = field(default=10, metadata={"min": 1})

    def solve(self, problem: Problem, z0) -> Solution:
        import optax

        obj = problem.fn
        opt = optax.lbfgs(memory_size=self.memory)
        value_and_grad = optax.value_and_grad_from_state(obj)
        g0 = jax.grad(obj)(z0)

        def step(s, k):
            z, state, _ = s
            value, grad = value_and_grad(z, state=state)
            updates, state = opt.update(grad, state, z, value=value, grad=grad, value_fn=obj)
            z2 = optax.apply_updates(z, updates)
            g2 = optax.tree_utils.tree_get(state, "grad")
            return (z2, state, g2), norm(g2)

        s, res, it, why = drive(
            step,
            (z0, opt.init(z0), g0),
            lambda s: s[0],
            norm(g0),
            self.tol,
            self.max_iter,
            problem.unrolled,
        )
        return Solution(s[0], res, it, why)


@REGISTRY.solver
@dataclass(frozen=True, kw_only=True)
class GradientDescent(IterativeSolver):
    """Gradient descent with a fixed learning rate: z <- z - learning_rate * grad obj(z)."""

    name = "gradient_descent"
    kinds = ("argmin",)

    max_iter: int = field(default=5000, metadata={"min": 1})
    learning_rate: float = field(default=0.1, metadata={"min": 0.0})

    def solve(self, problem: Problem, z0) -> Solution:
        grad = jax.grad(problem.fn)
        lr = self.learning_rate
        g0 = grad(z0)

        def step(s, k):
            z, g = s
            z2 = z - lr * g
            g2 = grad(z2)
            return (z2, g2), norm(g2)

        s, res, it, why = drive(
            step, (z0, g0), lambda s: s[0], norm(g0), self.tol, self.max_iter, problem.unrolled
        )
        return Solution(s[0], res, it, why)
