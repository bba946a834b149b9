"""The standard normal quantile function, to about 1e-16 relative accuracy, with numpy
alone (the summaries' rank normalization needs it; scipy is not imported at start-up)."""

from __future__ import annotations

import numpy as np

# Wichura (1988), Algorithm AS241 (PPND16), Applied Statistics 37(3): the
# normal quantile to about 1e-16 relative accuracy.  Coefficients highest power
# first, as np.polyval takes them.
_CENTRAL_NUM = (
    2509.0809287301226727,
    33430.575583588128105,
    67265.770927008700853,
    45921.953931549871457,
    13731.693765509461125,
    1971.5909503065514427,
    133.14166789178437745,
    3.387132872796366608,
)
_CENTRAL_DEN = (
    5226.495278852545561,
    28729.085735721942674,
    39307.89580009271061,
    21213.794301586595867,
    5394.1960214247511077,
    687.1870074920579083,
    42.313330701600911252,
    1.0,
)
_INNER_NUM = (
    7.7454501427834140764e-4,
    0.0227238449892691845833,
    0.24178072517745061177,
    1.27045825245236838258,
    3.64784832476320460504,
    5.7694972214606914055,
    4.6303378461565452959,
    1.42343711074968357734,
)
_INNER_DEN = (
    1.05075007164441684324e-9,
    5.475938084995344946e-4,
    0.0151986665636164571966,
    0.14810397642748007459,
    0.68976733498510000455,
    1.6763848301838038494,
    2.05319162663775882187,
    1.0,
)
_TAIL_NUM = (
    2.01033439929228813265e-7,
    2.71155556874348757815e-5,
    0.0012426609473880784386,
    0.026532189526576123093,
    0.29656057182850489123,
    1.7848265399172913358,
    5.4637849111641143699,
    6.6579046435011037772,
)
_TAIL_DEN = (
    2.04426310338993978564e-15,
    1.4215117583164458887e-7,
    1.8463183175100546818e-5,
    7.868691311456132591e-4,
    0.0148753612908506148525,
    0.13692988092273580531,
    0.59983220655588793769,
    1.0,
)


def norm_ppf(p: np.ndarray) -> np.ndarray:
    """The standard normal quantile function for probabilities strictly in (0, 1)."""
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    out = np.empty_like(p)
    central = np.abs(q) <= 0.425
    if central.any():
        qc = q[central]
        r = 0.180625 - qc * qc
        out[central] = qc * np.polyval(_CENTRAL_NUM, r) / np.polyval(_CENTRAL_DEN, r)
    tail = ~central
    if tail.any():
        qt = q[tail]
        r = np.sqrt(-np.log(np.where(qt < 0, p[tail], 1.0 - p[tail])))
        inner = r <= 5.0
        ri = np.where(inner, r - 1.6, 0.0)
        ro = np.where(inner, 0.0, r - 5.0)
        x = np.where(
            inner,
            np.polyval(_INNER_NUM, ri) / np.polyval(_INNER_DEN, ri),
            np.polyval(_TAIL_NUM, ro) / np.polyval(_TAIL_DEN, ro),
        )
        out[tail] = np.where(qt < 0, -x, x)
    return out


__all__ = ["norm_ppf"]
