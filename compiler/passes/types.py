"""Type expressions -> (Ty, Constraint), and static sizes of integer expressions."""

from __future__ import annotations

from fpl.compiler import ir
from fpl.stdlib.types import INT, Dim

#: Structured types: name -> (rank of the value, constraint kind).
STRUCTURED: dict[str, tuple[int, ir.StructuredKind]] = {
    "simplex": (1, "simplex"),
    "ordered": (1, "ordered"),
    "positive_ordered": (1, "positive_ordered"),
    "cholesky_corr": (2, "cholesky_corr"),
    "corr_matrix": (2, "corr_matrix"),
    "cov_matrix": (2, "cov_matrix"),
    "cholesky_cov": (2, "cholesky_cov"),
}


def static_dim(expr: ir.Expr | None, sizes: dict[str, int] | None = None) -> Dim:
    """The value of an integer expression as a size: an int when known, the text of a
    symbolic size when it depends only on data integers, else None."""
    if isinstance(expr, ir.Const) and expr.ty.base == "int" and not expr.ty.shape:
        return int(expr.value)
    if isinstance(expr, ir.Ref) and expr.kind == "data" and expr.ty == INT:
        if sizes is not None and expr.name in sizes:
            return int(sizes[expr.name])
        return expr.name
    if isinstance(expr, ir.Op) and expr.ty == INT and expr.name in ("neg", "pos"):
        inner = static_dim(expr.args[0], sizes) if len(expr.args) == 1 else None
        if inner is None or expr.name == "pos":
            return inner
        if isinstance(inner, int):
            return -inner
        return f"-({inner})" if " " in inner else f"-{inner}"
    if isinstance(expr, ir.Op) and expr.ty == INT and expr.name in ("add", "sub", "mul"):
        a, b = (static_dim(x, sizes) for x in expr.args)
        if a is None or b is None:
            return None
        if isinstance(a, int) and isinstance(b, int):
            return {"add": a + b, "sub": a - b, "mul": a * b}[expr.name]
        sym = {"add": "+", "sub": "-", "mul": "*"}[expr.name]
        left = f"({a})" if isinstance(a, str) and " " in a and sym == "*" else str(a)
        right = f"({b})" if isinstance(b, str) and " " in b and sym != "+" else str(b)
        return f"{left} {sym} {right}"
    return None
