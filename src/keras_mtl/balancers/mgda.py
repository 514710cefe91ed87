"""MGDA: the minimum-norm point of the convex hull of the task gradients."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from keras_mtl.balancers.base import Array, Context, GramianWeighting, Inputs
from keras_mtl.balancers.gramian import norms
from keras_mtl.balancers.min_norm import min_norm_weights

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


@dataclasses.dataclass(frozen=True)
class MGDA(GramianWeighting):
    """MGDA (Désidéri 2012; Sener & Koltun 2018, https://arxiv.org/abs/1810.04650).

    The update is the minimum-norm element of the convex hull of the task
    gradients: w = argmin_{w >= 0, sum w = 1} w^T G w. It is a common
    descent direction (non-conflicting) and zero at a Pareto-stationary
    point. Task gradients may first be normalised as in Sener & Koltun:
    by their norm (`"l2"`), loss (`"loss"`) or both (`"loss+"`).

    MGDA-UB, the paper's cheaper upper bound, is this method with
    `compile(balance_mode="representation")`: the same problem on the
    gradients of the shared representation.

    Args:
        normalization: `"none"`, `"l2"`, `"loss"` or `"loss+"`.

    Example:
    >>> (MGDA().aggregate([[-4.0, 1, 1], [6, 1, 1]]).round(4) + 0.0).tolist()
    [0.0, 1.0, 1.0]
    """

    key = "mgda"
    claims = frozenset({"non_conflicting", "permutation_invariant"})

    normalization: str = "none"

    def check(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"MGDA: normalization must be one of {', '.join(NORMALIZATIONS)}, "
                f"got {self.normalization!r}."
            )

    def _scale(self, gramian: Array, losses: Array) -> Array:
        n = norms(gramian)
        if self.normalization == "l2":
            return n
        if self.normalization == "loss":
            return np.abs(losses)
        if self.normalization == "loss+":
            return np.abs(losses) * n
        return np.ones(len(gramian))

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        gramian, losses = inputs.gramian, inputs.losses
        scale = self._scale(gramian, losses)
        scale = np.where(scale > 1e-12, scale, 1.0)
        g = gramian / np.outer(scale, scale)
        return min_norm_weights(g) / scale, state
