"""Projection onto the dual cone of the rows of J, in weight space.

Proposition 1 of Quinton & Rey, "Jacobian Descent for Multi-Objective
Optimization" (2024, https://arxiv.org/abs/2406.16232): the projection of
J^T u onto the dual cone {x : J x >= 0} is J^T v with

    v = argmin  v^T G v   subject to  v >= u   (G = J J^T).

Writing v = u + z with z >= 0 and G = A^T A turns this into the non-negative
least squares problem min_{z >= 0} ||A z + A u||, which Lawson and Hanson's
active-set algorithm (scipy.optimize.nnls) solves exactly.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from keras_mtl.balancers.gramian import factor

Array = np.ndarray


def project_weights(u: Array, gramian: Array) -> Array:
    """Weights v of the projection of J^T u onto the dual cone of J's rows.

    Example:
    >>> g = np.array([[1.0, -1.0], [-1.0, 1.0]])  # two opposite gradients
    >>> project_weights(np.array([1.0, 0.0]), g).round(6).tolist()
    [1.0, 1.0]
    """
    a = factor(gramian)
    if not np.any(a):
        return np.asarray(u, dtype=np.float64).copy()
    z, _ = nnls(a, -a @ u, maxiter=50 * len(u) + 100)
    return u + z
