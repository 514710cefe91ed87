"""Nash-MTL: the Nash bargaining solution between the tasks."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from keras_mtl.balancers import power_balance
from keras_mtl.balancers.base import (
    Array,
    Context,
    GramianWeighting,
    Inputs,
    check_at_least,
)


@dataclasses.dataclass(frozen=True)
class NashMTL(GramianWeighting):
    """Nash-MTL (Navon et al. 2022, https://arxiv.org/abs/2202.01017).

    The update d = J^T a that maximises sum_i log(g_i . d) under ||d|| <= 1:
    a solves G a = 1 / a (elementwise), here exactly (see `power_balance`)
    on the Gramian normalised by its Frobenius norm, as in the reference
    code. The shared update is then clipped to norm `max_norm`; each
    task's head learns from its loss weighted by a_i, as in the reference
    code. Costly; `compile(update_every=k)` recomputes a every k steps.

    Args:
        max_norm: Clip the shared update to this norm (0: no clipping).

    Example:
    >>> NashMTL().aggregate([[-4.0, 1, 1], [6, 1, 1]]).round(4).tolist()
    [0.0542, 0.7061, 0.7061]
    """

    key = "nash_mtl"
    claims = frozenset({"non_conflicting", "permutation_invariant"})

    max_norm: float = 1.0

    def check(self) -> None:
        check_at_least(self, 0.0, max_norm=self.max_norm)

    def _alpha(self, gramian: Array) -> Array:
        frobenius = float(np.linalg.norm(gramian))
        k = len(gramian)
        if frobenius <= 1e-300 or np.any(np.diag(gramian) <= 1e-12 * frobenius):
            # A zero gradient leaves no bargaining room.
            return np.zeros(k)
        alpha = power_balance.solve(gramian / frobenius, alpha=1.0)
        # No solution: a positive combination of the gradients is zero (a
        # Pareto-stationary point), where the update's limit is zero.
        return np.zeros(k) if alpha is None else alpha

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        gramian = inputs.gramian
        alpha = self._alpha(gramian)
        norm = np.sqrt(max(float(alpha @ gramian @ alpha), 0.0))
        if self.max_norm > 0 and norm > self.max_norm:
            alpha = alpha * (self.max_norm / norm)
        return alpha, state

    def head_factors(self, losses: Array, weights: Array) -> Array:
        # As in the reference code, each head learns from a_i L_i (here the
        # clipped a_i; at a stationary point, where a = 0, from L_i).
        return weights if np.any(weights) else np.ones(len(weights))
