"""UPGrad: project each task gradient onto the dual cone, then average."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from keras_mtl.balancers.base import Array, Context, GramianWeighting, check_positive
from keras_mtl.balancers.dual_cone import project_weights
from keras_mtl.balancers.gramian import normalize, regularize


class UPGrad(GramianWeighting):
    """UPGrad (Quinton & Rey 2024, https://arxiv.org/abs/2406.16232).

    Projects each task's gradient g_i onto the dual cone of all task
    gradients {x : J x >= 0} and averages the projections. The update never
    conflicts with a task (J (J^T w) >= 0), and with non-conflicting
    gradients it is their mean. In weights: w = sum_i v_i / k with
    v_i = argmin_{v >= e_i} v^T G v, computed on the trace-normalised,
    regularised Gramian.

    Args:
        norm_eps: At or below this trace the Gramian counts as zero (the
            default 0 keeps the method scale-invariant at every scale).
        reg_eps: Added to the normalised Gramian's diagonal.

    Example:
    >>> UPGrad().aggregate([[-4.0, 1, 1], [6, 1, 1]]).round(4).tolist()
    [0.2929, 1.9004, 1.9004]
    """

    key = "upgrad"
    claims = frozenset({"non_conflicting", "permutation_invariant", "scale_invariant"})

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
        weights = sum(project_weights(np.eye(k)[i] / k, g) for i in range(k))
        return np.asarray(weights), state

    def get_config(self) -> dict[str, Any]:
        return {"norm_eps": self.norm_eps, "reg_eps": self.reg_eps}
