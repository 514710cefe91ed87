"""FairGrad: alpha-fair allocation of improvement between the tasks."""

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
    check_positive,
)


@dataclasses.dataclass(frozen=True)
class FairGrad(GramianWeighting):
    """FairGrad (Ban & Ji 2024, https://arxiv.org/abs/2402.15638).

    The update d = J^T w maximises sum_i u(g_i . d) for the alpha-fair
    utility u: its weights solve G w = w^(-1/alpha). alpha = 1 is
    proportional fairness (Nash-MTL's condition, without its
    normalisation), larger alpha approaches max-min fairness. Each task's
    head learns from its loss weighted by w_i, as in the reference code.

    Args:
        alpha: The fairness exponent (> 0).

    Example:
    >>> w = FairGrad().weights([[-4.0, 1, 1], [6, 1, 1]])
    >>> (w * (np.array([[18.0, -22], [-22, 38]]) @ w)).round(6).tolist()
    [1.0, 1.0]
    """

    key = "fairgrad"
    claims = frozenset({"non_conflicting", "permutation_invariant"})

    alpha: float = 1.0

    def check(self) -> None:
        check_positive(self, alpha=self.alpha)

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        gramian = inputs.gramian
        k = len(gramian)
        trace = float(np.trace(gramian))
        if trace <= 1e-300 or np.any(np.diag(gramian) <= 1e-12 * trace):
            return np.zeros(k), state
        # Solve at unit trace, then rescale: w(tG) = t^(-alpha/(alpha+1)) w(G).
        w = power_balance.solve(gramian / trace, alpha=self.alpha)
        if w is None:  # a Pareto-stationary point: the update's limit is zero
            return np.zeros(k), state
        return w * trace ** (-self.alpha / (self.alpha + 1.0)), state

    def head_factors(self, losses: Array, weights: Array) -> Array:
        return weights if np.any(weights) else np.ones(len(weights))
