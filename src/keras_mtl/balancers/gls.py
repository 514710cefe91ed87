"""Geometric loss strategy: minimise the geometric mean of the losses."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from keras_mtl.balancers.base import Array, Context, LossWeighting, check_positive


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

    def __init__(self, eps: float = 1e-12) -> None:
        check_positive(self, eps=eps)
        self.eps = float(eps)

    def weigh(
        self, losses: Array, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        floored = np.maximum(losses, self.eps)
        geometric = float(np.exp(np.mean(np.log(floored))))
        return geometric / (len(losses) * floored), state

    def get_config(self) -> dict[str, Any]:
        return {"eps": self.eps}
