"""IMTL-L: learned loss scales that equalise the scaled losses."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
from keras import ops

from keras_mtl.balancers.base import Array, Context, Inputs, LossWeighting


class IMTLLState(NamedTuple):
    log_scale: Array  # s, learned with the model


@dataclasses.dataclass(frozen=True)
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
    learned = ("log_scale",)
    claims = frozenset({"permutation_invariant"})

    def init(self, num_tasks: int, dim: int = 0) -> IMTLLState:
        return IMTLLState(np.zeros(num_tasks))

    def objective(self, losses: Any, counts: Any, state: Any) -> tuple[Any, Any]:
        s = state.log_scale
        present = ops.cast(ops.greater(counts, 0), s.dtype)
        weights = ops.exp(s)
        return ops.sum(present * (weights * losses - s)), weights

    def update(
        self, inputs: Inputs, state: IMTLLState, ctx: Context
    ) -> tuple[Array, IMTLLState]:
        return np.exp(state.log_scale), state
