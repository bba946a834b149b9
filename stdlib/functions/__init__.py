"""Built-in functions with Stan's names and meanings (plus NumPy-style constructors).

Each entry is the implementation (JAX) with its type rule, registered in
``fpl.stdlib.registry.REGISTRY`` when its module is imported; importing this package
imports them all.  Integer arguments named in ``static=`` are sizes: they must be known
before the model runs (data or literals).  JAX is reached through ``fpl.stdlib.lazy``,
so registering (and ``fpl check``) never imports it.

One module per kind of function:

- ``elementwise``: maths on reals (powers, logarithms, trigonometry, links, rounding)
- ``special``: gamma, beta and error functions, binomial coefficients
- ``reductions``: sum, mean, norms, log_sum_exp, softmax
- ``products``: dot products, distances, quadratic forms, cross products
- ``linalg``: diagonals, decompositions, determinants, solves
- ``arrays``: sizes, stacking, reshaping
- ``indexing``: 1-based slicing
- ``sorting``: sorts and ranks
- ``constructors``: zeros/ones, rep_*, linspaced_*, one_hot_*
- ``gp_kernels``: Gaussian-process covariance functions
- ``prox``: stop_gradient, sign, proximal maps and projections
- ``conv``: 1-D and 2-D convolutions (valid and same padding, strides)
- ``constants``: ``pi()``, ``e()``, infinities, NaN, machine precision
"""

from fpl.stdlib.functions import (  # noqa: F401  (imported to register their entries)
    arrays,
    constants,
    constructors,
    conv,
    elementwise,
    gp_kernels,
    indexing,
    linalg,
    products,
    prox,
    reductions,
    sorting,
    special,
)
