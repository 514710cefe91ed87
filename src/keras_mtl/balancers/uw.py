"""Uncertainty weighting: learned homoscedastic task uncertainties."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
from keras import ops

from keras_mtl.balancers.base import Array, Context, Inputs, LossWeighting


class UWState(NamedTuple):
    log_variance: Array  # s, learned with the model


@dataclasses.dataclass(frozen=True)
class UW(LossWeighting):
    """Uncertainty weighting (Kendall, Gal & Cipolla 2018,
    https://arxiv.org/abs/1705.07115).

    Each task has a learned log-variance s_i, optimised with the model by its
    optimizer: the objective is sum_i (L_i / (2 exp(s_i)) + s_i / 2), so a
    task's weight 1 / (2 exp(s_i)) falls while its loss stays high. s
    starts at -0.5 (weight 0.824), as in LibMTL. The s_i are the
    method's state (`log_variance`), trainable variables of the model's
    `balancer_state` layer: `UW().weights(losses, model.balancer_state.state())`
    gives the learned weights.

    Example:
    >>> UW().weights([0.5, 2.0]).round(4).tolist()
    [0.8244, 0.8244]
    """

    key = "uw"
    learned = ("log_variance",)
    claims = frozenset({"permutation_invariant"})

    def init(self, num_tasks: int, dim: int = 0) -> UWState:
        return UWState(np.full(num_tasks, -0.5))

    def objective(self, losses: Any, counts: Any, state: Any) -> tuple[Any, Any]:
        s = state.log_variance
        # A task without labels in the batch leaves its s_i alone.
        present = ops.cast(ops.greater(counts, 0), s.dtype)
        weights = 0.5 * ops.exp(-s)
        return ops.sum(present * (weights * losses + s / 2)), weights

    def update(
        self, inputs: Inputs, state: UWState, ctx: Context
    ) -> tuple[Array, UWState]:
        return 0.5 * np.exp(-state.log_variance), state
