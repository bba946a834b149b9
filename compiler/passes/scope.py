"""Names in scope: what a name is bound to (its kind, type and declaration) and the
nested scopes of the program, user functions and implicit nodes."""

from __future__ import annotations

from dataclasses import dataclass, field

from fpl.compiler import ir
from fpl.dsl.spans import Span
from fpl.stdlib.types import Ty


@dataclass
class Symbol:
    kind: ir.RefKind
    ty: Ty
    span: Span
    implicit: bool = False  # bound to an implicit node (has .residual/.iterations)
    #: a top-level `let` of data and constants only (computed once, at bind time); an
    #: integer one may stand for a size (``let K = max(y)`` then ``real[K - 1]``)
    data_only: bool = False


@dataclass
class Scope:
    names: dict[str, Symbol] = field(default_factory=dict)
    parent: Scope | None = None

    def lookup(self, name: str) -> Symbol | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None

    def all_names(self) -> set[str]:
        out: set[str] = set()
        scope: Scope | None = self
        while scope is not None:
            out |= set(scope.names)
            scope = scope.parent
        return out


__all__ = ["Scope", "Symbol"]
