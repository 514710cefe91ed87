"""Uncertainty weighting: learned homoscedastic task uncertainties."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from keras import ops

from keras_mtl.balancers.base import Array, Context, LossWeighting


class UW(LossWeighting):
    """Uncertainty weighting (Kendall, Gal & Cipolla 2018,
    https://arxiv.org/abs/1705.07115).

    Each task has a learned log-variance s_i, optimised with the model by its
    optimizer: the objective is sum_i (L_i / (2 exp(s_i)) + s_i / 2), so a
    task's weight 1 / (2 exp(s_i)) falls while its loss stays high. s
    starts at -0.5 (weight 0.824), as in LibMTL. The s_i are trainable
    variables of the model's `balancer_state` layer (`params`).

    Example:
    >>> UW().weights([0.5, 2.0]).round(4).tolist()
    [0.8244, 0.8244]
    """

    key = "uw"
    parametric = True
    claims = frozenset({"permutation_invariant"})

    def init_params(self, num_tasks: int) -> Array:
        return np.full(num_tasks, -0.5)

    def objective(self, losses: Any, counts: Any, params: Any) -> tuple[Any, Any]:
        # A task without labels in the batch leaves its s_i alone.
        present = ops.cast(ops.greater(counts, 0), params.dtype)
        weights = 0.5 * ops.exp(-params)
        return ops.sum(present * (weights * losses + params / 2)), weights

    def weigh(
        self, losses: Array, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        return 0.5 * np.exp(-self.init_params(len(losses))), state
