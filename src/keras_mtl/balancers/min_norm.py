"""The minimum-norm point of the convex hull of the rows of J (MGDA's step).

Solves  min_w w^T G w  subject to  w >= 0, sum(w) = 1  exactly with Wolfe's
active-set algorithm ("Finding the nearest point in a polytope", Mathematical
Programming 11, 1976) in weight space: grow the support with the most
improving row, solve the equality-constrained problem on the support, and
step back to the simplex when a weight would turn negative.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray


def _affine_minimizer(gramian: Array, support: list[int]) -> Array:
    """argmin v^T G_SS v with sum(v) = 1 (least-norm solution if singular)."""
    n = len(support)
    g = gramian[np.ix_(support, support)]
    kkt = np.zeros((n + 1, n + 1))
    kkt[:n, :n] = g
    kkt[:n, n] = 1.0
    kkt[n, :n] = 1.0
    rhs = np.zeros(n + 1)
    rhs[n] = 1.0
    solution = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
    return solution[:n]


def min_norm_weights(gramian: Array, tol: float = 1e-10, max_iter: int = 1000) -> Array:
    """Simplex weights w minimising ||J^T w||^2 = w^T G w.

    Example:
    >>> min_norm_weights(np.array([[18.0, -22.0], [-22.0, 38.0]])).round(4).tolist()
    [0.6, 0.4]
    """
    k = len(gramian)
    scale = max(float(np.max(np.abs(np.diag(gramian)))), 1e-300)
    g = gramian / scale  # the minimiser is scale-free; tolerances are relative
    w = np.zeros(k)
    first = int(np.argmin(np.diag(g)))
    w[first] = 1.0
    support = [first]
    for _ in range(max_iter):
        grad = g @ w
        value = float(w @ grad)
        candidate = int(np.argmin(grad))
        if grad[candidate] >= value - tol or candidate in support:
            break
        support.append(candidate)
        while True:
            v = _affine_minimizer(g, support)
            if np.all(v > 0):
                w = np.zeros(k)
                w[support] = v
                break
            current = w[support]
            shrinking = v <= 0
            ratios = current[shrinking] / np.maximum(
                current[shrinking] - v[shrinking], 1e-300
            )
            theta = float(np.min(ratios))
            step = current + theta * (v - current)
            step[step < 1e-15] = 0.0
            w = np.zeros(k)
            w[support] = step
            support = [i for i in support if w[i] > 0]
    return w / w.sum()
