"""DB-MTL: dual balancing of loss scales and gradient magnitudes."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from keras_mtl.balancers.base import (
    Array,
    Context,
    Inputs,
    JacobianAggregator,
    check_at_least,
    check_unit,
)

_NOT_DEFINED = (
    "DB-MTL keeps a moving average of each task's gradient across steps; "
    "gradients of the shared representation belong to a different batch of "
    "samples at every step, so their average means nothing."
)


class DBMTLState(NamedTuple):
    average: Array  # moving average of the log-loss gradients
    steps: Array


@dataclasses.dataclass(frozen=True)
class DBMTL(JacobianAggregator):
    """Dual-balancing MTL (Lin et al. 2023, https://arxiv.org/abs/2308.12029).

    Balances loss scales by taking gradients of log L_i (g_i / L_i), keeps
    their moving average m_i, and balances magnitudes by rescaling every m_i
    to the largest norm: the update is sum_i (max_j ||m_j|| / ||m_i||) m_i.
    Each task's head learns from the gradient of log L_i, as in the
    reference code.

    Args:
        beta: Weight of the past in the moving average.
        beta_sigma: beta decays as beta / t^beta_sigma.
    """

    key = "db_mtl"
    not_at_representation = _NOT_DEFINED

    beta: float = 0.9
    beta_sigma: float = 0.0

    def check(self) -> None:
        check_unit(self, beta=self.beta)
        check_at_least(self, 0.0, beta_sigma=self.beta_sigma)

    def init(self, num_tasks: int, dim: int = 0) -> DBMTLState:
        return DBMTLState(np.zeros((num_tasks, dim)), np.asarray(0.0))

    def update(
        self, inputs: Inputs, state: DBMTLState, ctx: Context
    ) -> tuple[Array, DBMTLState]:
        jacobian, losses = inputs.jacobian, inputs.losses
        present = ctx.mask(len(jacobian))
        t = float(state.steps) + 1
        beta = self.beta / t**self.beta_sigma
        log_grads = jacobian / (losses[:, None] + 1e-8)
        average = np.where(
            present[:, None],
            log_grads + beta * (state.average - log_grads),
            state.average,
        )
        norms = np.linalg.norm(average, axis=1)
        scale = norms.max(initial=0.0) / (norms + 1e-8)
        return scale @ average, DBMTLState(average, np.asarray(t))

    def head_factors(self, losses: Array, weights: Array) -> Array:
        return 1.0 / (np.asarray(losses) + 1e-8)
