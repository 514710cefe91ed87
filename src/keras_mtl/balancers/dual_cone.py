"""Projection onto the dual cone of the rows of J, in weight space.

Proposition 1 of Quinton & Rey, "Jacobian Descent for Multi-Objective
Optimization" (2024, https://arxiv.org/abs/2406.16232): the projection of
J^T u onto the dual cone {x : J x >= 0} is J^T v with

    v = argmin  v^T G v   subject to  v >= u   (G = J J^T).

Writing v = u + z with z >= 0 and G = A^T A turns this into the non-negative
least squares problem min_{z >= 0} ||A z + A u||, which Lawson and Hanson's
active-set algorithm (scipy.optimize.nnls) solves exactly.

On the device (`device_project`, keras.ops, float32, up to `DEVICE_TASKS`
tasks) the same problem is solved by block principal pivoting (Kim & Park,
"Fast nonnegative matrix factorization: an active-set-like method and
comparisons", SIAM J. Sci. Comput. 33(6), 2011; after Judice & Pires 1994):
guess the free set F, solve A_FF z_F = -(A u)_F (zero elsewhere), and
exchange every index whose sign is wrong (z_i < 0 in F, gradient
(A z + A u)_i < 0 outside it) until none is; when exchanging whole sets
stops reducing the count, single exchanges of the largest wrong index
guarantee termination. Signs are judged against 1e-6 of the largest
entry of A u (float32's resolution after one refinement of each solve);
every column of targets pivots at once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from keras import ops
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

    def runs_on_device(self, num_tasks: int, accelerator: bool) -> bool:
        return num_tasks <= DEVICE_TASKS

    def device_projections(self, gramian: Any, present: Any, targets: Any) -> Any:
        """`project_weights` of each column of `targets` on the device."""
        return device_project(gramian, present, targets, self.norm_eps, self.reg_eps)


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


#: Up to this many tasks the projections run on the device (any device):
#: a 10-task step's projections took 0.07 ms there against 0.43 ms of
#: host solves plus the host call (docs/benchmarks.md); above, on the host.
DEVICE_TASKS = 32
#: Below this fraction of the largest entry of A u a sign counts as zero.
SIGN_TOLERANCE = 1e-6
#: The budget of exchanges, per task squared (pivoting took at most 72 for
#: 32 tasks in 6,000 random problems).
EXCHANGES = 10


def device_project(
    gramian: Any, present: Any, targets: Any, norm_eps: float, reg_eps: float
) -> Any:
    """`project_weights` in keras.ops (float32) for each column u of
    `targets` (tasks x m), on the conditioned Gramian of the present tasks
    (`present` 0/1; the other rows and columns of `gramian` are zero and
    their entries of u too, which leaves them zero in v).

    Returns:
        V (tasks x m): v = argmin_{v >= u} v^T A v for each column; NaN in
        the columns where pivoting did not settle within its budget of
        exchanges (never seen; the step with them is skipped, as one with
        non-finite gradients).
    """
    k = int(gramian.shape[0])
    trace = ops.trace(gramian)
    some = trace > norm_eps
    a = ops.where(some, gramian / ops.where(some, trace, 1.0), 0.0)
    a = a + ops.diag(reg_eps * present + (1.0 - present))
    u = ops.transpose(targets)  # one row per problem: (m, k)
    b = ops.matmul(u, a)  # (A u)^T, A symmetric
    tol = SIGN_TOLERANCE * ops.max(ops.abs(b), axis=1, keepdims=True)
    eye = ops.eye(k, dtype="float32")
    index = ops.arange(k)

    def settle(free: Any) -> tuple[Any, Any]:
        """z for free sets `free` (m, k) and which indices have wrong signs."""
        systems = free[:, :, None] * a[None] * free[:, None, :]
        systems = systems + (1.0 - free)[:, :, None] * eye[None]
        rhs = (-free * b)[:, :, None]
        z = ops.solve(systems, rhs)
        z = z + ops.solve(systems, rhs - ops.matmul(systems, z))  # one refinement
        z = z[:, :, 0] * free
        y = (ops.matmul(z, a) + b) * (1.0 - free)
        wrong = ops.logical_or(
            ops.logical_and(free > 0, z < -tol), ops.logical_and(free < 1, y < -tol)
        )
        return z, wrong

    def unsettled(free: Any, z: Any, wrong: Any, best: Any, tries: Any) -> Any:
        return ops.any(wrong)

    def exchange(free: Any, z: Any, wrong: Any, best: Any, tries: Any) -> tuple:
        count = ops.sum(ops.cast(wrong, "int32"), axis=1)
        fewer = count < best
        best = ops.where(fewer, count, best)
        tries = ops.where(fewer, 3, tries - 1)
        last = ops.max(ops.where(wrong, index[None], -1), axis=1)
        flip = ops.where(
            ops.logical_or(fewer, tries >= 0)[:, None],
            wrong,
            ops.logical_and(wrong, index[None] == last[:, None]),
        )
        free = ops.where(flip, 1.0 - free, free)
        z, wrong = settle(free)
        return free, z, wrong, best, tries

    m = int(targets.shape[1])
    free = ops.zeros((m, k), "float32")
    # Nothing free: z = 0 and y = A u, what `settle` would solve for.
    start = (
        free,
        free,
        b < -tol,
        ops.full((m,), k + 1, "int32"),
        ops.full((m,), 3, "int32"),
    )
    _, z, wrong, _, _ = ops.while_loop(
        unsettled, exchange, start, maximum_iterations=EXCHANGES * k * k
    )
    v = u + ops.maximum(z, 0.0)
    v = ops.where(ops.any(wrong, axis=1, keepdims=True), float("nan"), v)
    return ops.transpose(v)
