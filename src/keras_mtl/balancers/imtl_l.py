"""IMTL-L: learned loss scales that equalise the scaled losses."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from keras import ops

from keras_mtl.balancers.base import Array, Context, LossWeighting


class IMTLL(LossWeighting):
    """IMTL-L, the loss half of Impartial Multi-Task Learning (Liu et al.
    2021, https://openreview.net/forum?id=IMPnRXEWpvr).

    Each task has a learned scale s_i, optimised with the model: the
    objective is sum_i (exp(s_i) L_i - s_i), whose minimum over s_i is
    reached when exp(s_i) L_i = 1, so scaled losses are driven towards 1.
    s starts at 0. The gradient half is `IMTLG`.

    Example:
    >>> IMTLL().weights([0.5, 2.0]).tolist()
    [1.0, 1.0]
    """

    key = "imtl_l"
    parametric = True
    claims = frozenset({"permutation_invariant"})

    def init_params(self, num_tasks: int) -> Array:
        return np.zeros(num_tasks)

    def objective(self, losses: Any, counts: Any, params: Any) -> tuple[Any, Any]:
        present = ops.cast(ops.greater(counts, 0), params.dtype)
        weights = ops.exp(params)
        return ops.sum(present * (weights * losses - params)), weights

    def weigh(
        self, losses: Array, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        return np.exp(self.init_params(len(losses))), state
