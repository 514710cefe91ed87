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

import dataclasses

import numpy as np
from scipy.optimize import nnls

from keras_mtl.balancers.base import GramianWeighting, check_at_least, check_positive
from keras_mtl.balancers.gramian import factor, normalize, regularize

Array = np.ndarray


@dataclasses.dataclass(frozen=True)
class DualConeWeighting(GramianWeighting):
    """Base of the methods that project onto the dual cone (UPGrad,
    DualProj): they work on the trace-normalised, regularised Gramian.

    Args:
        norm_eps: At or below this trace the Gramian counts as zero (the
            default 0 keeps the method scale-invariant at every scale).
        reg_eps: Added to the normalised Gramian's diagonal.
    """

    norm_eps: float = 0.0
    reg_eps: float = 1e-4

    def check(self) -> None:
        check_positive(self, reg_eps=self.reg_eps)
        check_at_least(self, 0.0, norm_eps=self.norm_eps)

    def conditioned(self, gramian: Array) -> Array:
        """G / trace(G) + reg_eps I (zero G below `norm_eps`)."""
        return regularize(normalize(gramian, self.norm_eps), self.reg_eps)


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
