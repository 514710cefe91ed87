"""Uncertainty weighting: learned homoscedastic task uncertainties."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from keras import ops

from keras_mtl.balancers.base import Array, Context, LossWeighting


class UW(LossWeighting):
    """Uncertainty weighting (Kendall, Gal & Cipolla 2018,
    https://arxiv.org/abs/1705.07115).

    Each task has a learned log-variance s_i, optimised with the model:
    the objective is sum_i (exp(-s_i) L_i + s_i) / 2, so a task's weight
    exp(-s_i) / 2 falls as its loss stays high. s starts at 0. The s_i are
    trainable variables of the model's `balancer_state` layer.

    Example:
    >>> UW().weights([0.5, 2.0]).tolist()
    [0.5, 0.5]
    """

    key = "uw"
    parametric = True
    claims = frozenset({"permutation_invariant"})

    def init_params(self, num_tasks: int) -> Array:
        return np.zeros(num_tasks)

    def objective(self, losses: Any, counts: Any, params: Any) -> tuple[Any, Any]:
        # A task without labels in the batch leaves its s_i alone.
        present = ops.cast(ops.greater(counts, 0), params.dtype)
        weights = ops.exp(-params) / 2
        terms = weights * losses + params / 2
        return ops.sum(present * terms), weights

    def weigh(
        self, losses: Array, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        return np.exp(-self.init_params(len(losses))) / 2, state
