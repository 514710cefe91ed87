"""DualProj: project the mean gradient onto the dual cone."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from keras_mtl.balancers.base import Array, Context, GramianWeighting, check_positive
from keras_mtl.balancers.dual_cone import project_weights
from keras_mtl.balancers.gramian import normalize, regularize


class DualProj(GramianWeighting):
    """DualProj: the mean gradient projected onto the dual cone of the task
    gradients, as GEM does for past tasks (Lopez-Paz & Ranzato 2017,
    https://arxiv.org/abs/1706.08840, Eq. 11; as an aggregator in Quinton &
    Rey 2024). The update never conflicts with a task.

    Args:
        norm_eps: At or below this trace the Gramian counts as zero (the
            default 0 keeps the method scale-invariant at every scale).
        reg_eps: Added to the normalised Gramian's diagonal.

    Example:
    >>> DualProj().aggregate([[-4.0, 1, 1], [6, 1, 1]]).round(4).tolist()
    [0.5563, 1.1109, 1.1109]
    """

    key = "dualproj"
    claims = frozenset({"non_conflicting", "permutation_invariant"})

    def __init__(self, norm_eps: float = 0.0, reg_eps: float = 1e-4) -> None:
        check_positive(self, reg_eps=reg_eps)
        if norm_eps < 0:
            raise ValueError(
                f"{type(self).__name__}: norm_eps must be >= 0, got {norm_eps}."
            )
        self.norm_eps = float(norm_eps)
        self.reg_eps = float(reg_eps)

    def weigh(
        self, gramian: Array, losses: Array, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        k = len(gramian)
        g = regularize(normalize(gramian, self.norm_eps), self.reg_eps)
        return project_weights(np.full(k, 1.0 / k), g), state

    def get_config(self) -> dict[str, Any]:
        return {"norm_eps": self.norm_eps, "reg_eps": self.reg_eps}
