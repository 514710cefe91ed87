"""Geometric loss strategy: minimise the geometric mean of the losses."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from keras_mtl.balancers.base import (
    Array,
    Context,
    Inputs,
    LossWeighting,
    check_positive,
)


@dataclasses.dataclass(frozen=True)
class GLS(LossWeighting):
    """Geometric loss strategy (Chennupati et al. 2019,
    https://arxiv.org/abs/1904.08492).

    Minimises (prod_i L_i)^(1/k), whose gradient weighs task i by
    GM / (k L_i): tasks with small losses count more, and the objective is
    invariant to rescaling any one loss.

    Args:
        eps: Losses are floored at this value.

    Example:
    >>> GLS().weights([1.0, 4.0]).tolist()  # GM = 2
    [1.0, 0.25]
    """

    key = "gls"
    claims = frozenset({"permutation_invariant"})

    eps: float = 1e-12

    def check(self) -> None:
        check_positive(self, eps=self.eps)

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        losses = inputs.losses
        floored = np.maximum(losses, self.eps)
        geometric = float(np.exp(np.mean(np.log(floored))))
        return geometric / (len(losses) * floored), state
