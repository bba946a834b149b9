"""The registries: every built-in function, operator, distribution and solver is one
entry here, added by a decorator beside its implementation.

An entry pairs a *type rule* (used by the checker, pure Python, no JAX) with an
*implementation* (used by the lowering, JAX).  The checker reads the registry and
never special-cases a library name; adding a function touches ``stdlib/`` and its
test table only.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from fpl.stdlib.types import Dim, Ty

if TYPE_CHECKING:
    from fpl.stdlib.solvers import Solver


@dataclass(frozen=True)
class Arg:
    """What a type rule sees of one argument: its type and, when it is a static integer
    expression (a literal, a data size, arithmetic of those), its value as a size."""

    ty: Ty
    dim: Dim = None


Rule = Callable[[list[Arg]], Ty]

#: How a function combines the polynomial degrees of its arguments (in an implicit node's
#: unknown); the table and the maths are in compiler/affine.py.  ``None``: not polynomial.
Fixity = Literal["infix", "prefix", "postfix"]
Linearity = Literal["sum", "same", "product", "double", "quotient", "solve", "quad_form", "power"]


@dataclass(frozen=True)
class FunctionEntry:
    name: str
    impl: Callable[..., Any]
    rule: Rule
    doc: str
    min_args: int
    max_args: int | None  # None: variadic
    static_args: tuple[int, ...] = ()  # positions that must be static integers (sizes)
    category: str = "math"
    linearity: Linearity | None = None  # for the affine test of implicit bodies
    #: how an operator is written (``+``, ``'``) and where (infix, prefix, postfix): the
    #: printer and the checker's messages spell operators from here; None: a call ``f(x)``
    spelling: str | None = None
    fixity: Fixity | None = None


@dataclass(frozen=True)
class Bound:
    """A support bound: a constant, or ``arg`` = the index of the argument giving it."""

    value: float | None = None
    arg: int | None = None


@dataclass(frozen=True)
class Support:
    """The support of a distribution (and so the constraint of a param it is a prior of).

    ``kind`` is one of: real, lower, upper, interval, simplex, ordered,
    positive_ordered, cholesky_corr, corr_matrix, cov_matrix, cholesky_cov, and for
    discrete distributions int, int_lower, int_interval, binary.
    """

    kind: str
    lower: Bound | None = None
    upper: Bound | None = None

    @property
    def discrete(self) -> bool:
        return self.kind in ("int", "int_lower", "int_interval", "binary")


@dataclass(frozen=True)
class DistributionEntry:
    name: str
    params: tuple[str, ...]
    build: Callable[..., Any]  # (*args) -> numpyro Distribution (Stan's parametrisation)
    support: Support
    doc: str
    event_rank: int = 0  # rank of one draw
    arg_ranks: tuple[int, ...] = ()  # per arg: how many trailing dims belong to one draw
    event_arg: int | None = None  # the arg whose trailing dims give the draw's shape
    value_offset: int = 0  # Stan outcome = NumPyro outcome + value_offset (categorical: 1)
    needs_event_shape: bool = False  # build(*args, event_shape=...) (e.g. lkj_corr_cholesky)
    min_args: int | None = None
    cdf: bool = False  # the built distribution has a CDF: `_cdf`, `_lcdf`, `_lccdf` forms

    @property
    def forms(self) -> tuple[str, ...]:
        """The distribution-function suffixes this entry supports."""
        lp = ("_lpmf", "_lupmf") if self.support.discrete else ("_lpdf", "_lupdf")
        return (*lp, *(("_cdf", "_lcdf", "_lccdf") if self.cdf else ()), "_rng")


@dataclass
class Registry:
    functions: dict[str, FunctionEntry] = field(default_factory=dict)
    distributions: dict[str, DistributionEntry] = field(default_factory=dict)
    # name -> solver class (fpl.stdlib.solvers.Solver): its fields are its options
    solvers: dict[str, type[Solver]] = field(default_factory=dict)

    def function(
        self,
        name: str | None = None,
        *,
        rule: Rule,
        args: tuple[int, int | None] | int = 1,
        static: tuple[int, ...] = (),
        category: str = "math",
        aliases: tuple[str, ...] = (),
        linearity: Linearity | None = None,
        spelling: str | None = None,
        fixity: Fixity | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(impl: Callable[..., Any]) -> Callable[..., Any]:
            lo, hi = (args, args) if isinstance(args, int) else args
            for key in (name or impl.__name__.rstrip("_"), *aliases):
                if key in self.functions:
                    raise ValueError(f"function {key} registered twice")
                self.functions[key] = FunctionEntry(
                    key,
                    impl,
                    rule,
                    (impl.__doc__ or "").strip(),
                    lo,
                    hi,
                    static,
                    category,
                    linearity,
                    spelling,
                    fixity,
                )
            return impl

        return register

    def distribution(
        self,
        name: str,
        params: tuple[str, ...],
        support: Support,
        *,
        event_rank: int = 0,
        arg_ranks: tuple[int, ...] | None = None,
        event_arg: int | None = None,
        value_offset: int = 0,
        needs_event_shape: bool = False,
        min_args: int | None = None,
        cdf: bool = False,
    ):
        def register(build: Callable[..., Any]) -> Callable[..., Any]:
            if name in self.distributions:
                raise ValueError(f"distribution {name} registered twice")
            self.distributions[name] = DistributionEntry(
                name,
                params,
                build,
                support,
                (build.__doc__ or "").strip(),
                event_rank,
                arg_ranks if arg_ranks is not None else (0,) * len(params),
                event_arg,
                value_offset,
                needs_event_shape,
                min_args,
                cdf,
            )
            return build

        return register

    def solver(self, cls: type[Solver]) -> type[Solver]:
        """Register a solver class (a decorator) under its ``name``; its docstring is
        its documentation."""
        if cls.name in self.solvers:
            raise ValueError(f"solver {cls.name} registered twice")
        cls.doc = inspect.cleandoc(cls.__doc__ or "")
        self.solvers[cls.name] = cls
        return cls


REGISTRY = Registry()


def registry() -> Registry:
    """The populated registry (importing the entry modules registers them)."""
    from fpl.stdlib import distributions, functions, glm, operators, solvers  # noqa: F401

    return REGISTRY
