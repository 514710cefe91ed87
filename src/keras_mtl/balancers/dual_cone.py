"""Projection onto the dual cone of the rows of J, in weight space.

Proposition 1 of Quinton & Rey, "Jacobian Descent for Multi-Objective
Optimization" (2024, https://arxiv.org/abs/2406.16232): the projection of
J^T u onto the dual cone {x : J x >= 0} is J^T v with

    v = argmin  v^T G v   subject to  v >= u   (G = J J^T).

Writing v = u + z with z >= 0 and G = A^T A turns this into the non-negative
least squares problem min_{z >= 0} ||A z + A u||, which Lawson and Hanson's
active-set algorithm (scipy.optimize.nnls) solves exactly.

On the device (`device_project`, keras.ops, up to `DEVICE_TASKS` tasks) the
same minimum comes from every candidate free set F at once: z_F solves
A_FF z_F = -(A u)_F, zero elsewhere; each candidate with z >= 0 is a
feasible point, and the optimum is the feasible one of least objective (the
problem is strictly convex, and its solution's own free set is a
candidate). 2^k small solves instead of a host call: for 10 tasks, 1,024
systems of 10 x 10.
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
        return num_tasks <= (DEVICE_TASKS if accelerator else CPU_TASKS)

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


#: Up to this many tasks the projections run on an accelerator (2^k small
#: solves); above, on the host.
DEVICE_TASKS = 12
#: The same on the CPU, where XLA runs the small solves one by one: 6 tasks
#: took 0.17 ms a step as on the host (NumPy's nnls), 10 tasks 3.1 ms
#: against 0.35 ms (docs/benchmarks.md).
CPU_TASKS = 6


def device_project(
    gramian: Any, present: Any, targets: Any, norm_eps: float, reg_eps: float
) -> Any:
    """`project_weights` in keras.ops (float32) for each column u of
    `targets` (tasks x m), on the conditioned Gramian of the present tasks
    (`present` 0/1; the other rows and columns of `gramian` are zero and
    their entries of u too, which leaves them zero in v).

    Returns:
        V (tasks x m): v = argmin_{v >= u} v^T A v for each column.
    """
    k = int(gramian.shape[0])
    trace = ops.trace(gramian)
    some = trace > norm_eps
    a = ops.where(some, gramian / ops.where(some, trace, 1.0), 0.0)
    a = a + ops.diag(reg_eps * present + (1.0 - present))
    codes = np.arange(2**k)[:, None]
    free = ops.convert_to_tensor(((codes >> np.arange(k)) & 1).astype("float32"))
    eye = ops.eye(k, dtype="float32")
    # A restricted to the free set, the identity elsewhere: (sets, k, k).
    systems = free[:, :, None] * a[None] * free[:, None, :]
    systems = systems + (1.0 - free)[:, :, None] * eye[None]
    rhs = -free[:, :, None] * ops.matmul(a, targets)[None]
    z = ops.solve(systems, rhs)
    z = z + ops.solve(systems, rhs - ops.matmul(systems, z))  # one refinement
    scale = ops.maximum(1.0, ops.max(ops.abs(z), axis=1))
    feasible = ops.all(z >= -1e-5 * scale[:, None, :], axis=1)  # (sets, m)
    v = targets[None] + ops.maximum(z, 0.0)
    objective = ops.sum(v * ops.matmul(a[None], v), axis=1)
    objective = ops.where(feasible, objective, float("inf"))
    best = ops.argmin(objective, axis=0)  # the empty set is always feasible
    index = ops.broadcast_to(best[None, None, :], (1, k, targets.shape[1]))
    return ops.take_along_axis(v, index, axis=0)[0]
