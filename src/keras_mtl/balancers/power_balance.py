"""Solving G w = w^(-1/alpha) for w > 0: the fixed point of Nash-MTL (alpha = 1)
and FairGrad.

The equations are the optimality conditions of the strictly convex problem

    min_{w > 0}  1/2 w^T G w - sum_i f(w_i),   f'(w) = w^(-1/alpha)

(f = log for alpha = 1, f(w) = w^(1-1/alpha) / (1-1/alpha) otherwise), so a
damped Newton method with a positivity-preserving line search finds the
unique solution to machine precision in a few dozen iterations. The
published methods reach the same point by sequential convex programming
(cvxpy) or nonlinear least squares (scipy).
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray


def _objective(g: Array, w: Array, alpha: float) -> float:
    if alpha == 1.0:
        potential = np.sum(np.log(w))
    else:
        p = 1.0 - 1.0 / alpha
        potential = np.sum(w**p) / p
    return 0.5 * float(w @ g @ w) - float(potential)


def _newton(g: Array, alpha: float, tol: float, max_iter: int) -> tuple[Array, bool]:
    """Damped Newton on the convex problem; returns (w, converged)."""
    diag = np.maximum(np.diag(g), 1e-300)
    w = 1.0 / np.sqrt(diag)  # exact when G is diagonal and alpha = 1
    for _ in range(max_iter):
        grad = g @ w - w ** (-1.0 / alpha)
        hess = g + np.diag((1.0 / alpha) * w ** (-1.0 / alpha - 1.0))
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        decrement = float(grad @ step)
        if decrement / 2 <= tol:
            return w, True
        # Stay strictly positive, then backtrack (Armijo).
        shrinking = step > 0
        t = 1.0
        if np.any(shrinking):
            t = min(1.0, 0.99 * float(np.min(w[shrinking] / step[shrinking])))
        current = _objective(g, w, alpha)
        while (
            t > 1e-12
            and _objective(g, w - t * step, alpha) > current - 0.25 * t * decrement
        ):
            t /= 2
        w = w - t * step
    return w, False


def solve(
    g: Array, alpha: float = 1.0, tol: float = 1e-12, max_iter: int = 100
) -> Array | None:
    """The w > 0 with (G w)_i = w_i^(-1/alpha) for all i, or None.

    There is no solution when a positive combination of the gradients is
    zero (a Pareto-stationary point: no direction improves every task); the
    problem is then unbounded and None is returned.

    Args:
        g: A positive semi-definite matrix with a positive diagonal, of
            moderate scale (normalise it first).
        alpha: The fairness exponent (> 0).
        tol: Stop when the Newton decrement falls below this.
        max_iter: At most this many Newton steps.

    Example:
    >>> w = solve(np.array([[2.0, 0.0], [0.0, 0.5]]))
    >>> (w * (np.array([[2.0, 0.0], [0.0, 0.5]]) @ w)).round(8).tolist()
    [1.0, 1.0]
    >>> solve(np.array([[1.0, -1.0], [-1.0, 1.0]])) is None
    True
    """
    w, converged = _newton(g, alpha, tol, max_iter)
    # An unbounded problem can look converged (the barrier flattens as w
    # grows); a true solution satisfies the equations themselves.
    residual = np.max(np.abs(w ** (1.0 / alpha) * (g @ w) - 1.0))
    return w if converged and residual < 1e-4 else None
