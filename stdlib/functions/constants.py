"""Stan's mathematical constants, called with no arguments: ``pi()``, ``e()``,
``sqrt2()``, ``negative_infinity()``, ``positive_infinity()``, ``not_a_number()``,
``machine_precision()``.  Each is a real scalar (a float64 value when inference runs)."""

from __future__ import annotations

import math

from fpl.stdlib import rules
from fpl.stdlib.functions._register import fn
from fpl.stdlib.lazy import jnp


def _constant(name: str, value: float, doc: str) -> None:
    def impl():
        return jnp.asarray(value, dtype=jnp.result_type(float))

    impl.__doc__ = doc
    fn(name, rule=rules.reduce_real, args=0, category="constant")(impl)


_constant("pi", math.pi, "pi = 3.14159...")
_constant("e", math.e, "e = 2.71828..., the base of the natural logarithm.")
_constant("sqrt2", math.sqrt(2.0), "The square root of 2.")
_constant("negative_infinity", -math.inf, "-inf (e.g. a log density of an impossible value).")
_constant("positive_infinity", math.inf, "+inf.")
_constant("not_a_number", math.nan, "NaN, not a number.")


@fn("machine_precision", rule=rules.reduce_real, args=0, category="constant")
def machine_precision():
    """The smallest x with 1 + x != 1 at the precision the model runs in (2.2e-16 in
    float64, the precision of inference)."""
    return jnp.asarray(jnp.finfo(jnp.result_type(float)).eps, dtype=jnp.result_type(float))
