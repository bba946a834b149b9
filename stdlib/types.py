"""Value types seen by the checker: a base (int, real, bool) and a shape of sizes.

A size is an ``int`` when known, a ``str`` naming a symbolic size written in terms of
data (``"N"``, ``"K - 1"``) when only data can tell, or ``None`` when unknown.  Two
symbolic sizes are only known equal when they are the same text; anything the
checker cannot decide is accepted here and checked again once data arrive (then all
sizes are integers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dim = int | str | None


@dataclass(frozen=True)
class Ty:
    base: str  # "int" | "real" | "bool"
    shape: tuple[Dim, ...] = ()

    @property
    def rank(self) -> int:
        return len(self.shape)

    def with_shape(self, shape: tuple[Dim, ...]) -> Ty:
        return Ty(self.base, tuple(shape))

    def with_base(self, base: str) -> Ty:
        return Ty(base, self.shape)

    def __str__(self) -> str:
        if not self.shape:
            return self.base
        return f"{self.base}[{', '.join(dim_text(d) for d in self.shape)}]"


REAL = Ty("real")
INT = Ty("int")
BOOL = Ty("bool")


def dim_text(d: Dim) -> str:
    return "?" if d is None else str(d)


#: What a type rule found wrong: a type (E0201) or a shape or size (E0202).
RuleErrorKind = Literal["type", "shape"]


class RuleError(Exception):
    """Raised by a type rule; the checker attaches the location, and the code from
    ``kind``: ``"type"`` (the default) or ``"shape"`` for shapes and sizes."""

    def __init__(
        self,
        message: str,
        arg: int | None = None,
        help: str | None = None,
        kind: RuleErrorKind = "type",
    ):
        super().__init__(message)
        self.message = message
        self.arg = arg  # which argument is at fault, if one is
        self.help = help
        self.kind = kind


def dims_equal(a: Dim, b: Dim) -> bool | None:
    """True/False when decidable, None when only data can tell."""
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if a == b:
        return True
    return None


def unify_dim(a: Dim, b: Dim, what: str) -> Dim:
    eq = dims_equal(a, b)
    if eq is False:
        raise RuleError(
            f"{what}: size {dim_text(a)} does not match size {dim_text(b)}", kind="shape"
        )
    if isinstance(a, int) or a is not None and b is None:
        return a
    return b


def broadcast(*shapes: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """NumPy broadcasting of shapes with symbolic sizes (errors only when certain)."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        result: Dim = 1
        for d in dims:
            if d == 1:
                continue
            if result == 1:
                result = d
                continue
            eq = dims_equal(result, d)
            if eq is False:
                texts = " and ".join("(" + ", ".join(dim_text(x) for x in s) + ")" for s in shapes)
                raise RuleError(f"shapes {texts} cannot be broadcast together", kind="shape")
            if not isinstance(result, int) and (isinstance(d, int) or result is None):
                result = d
        out.append(result)
    return tuple(out)


def join_base(*bases: str) -> str:
    """The base of an arithmetic result: int only if every operand is int or bool."""
    return "int" if all(b in ("int", "bool") for b in bases) else "real"
