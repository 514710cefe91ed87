"""CAGrad: the best worst-case improvement near the average gradient."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize

from keras_mtl.balancers.base import (
    Array,
    Context,
    GramianWeighting,
    Inputs,
    check_at_least,
    check_positive,
)
from keras_mtl.balancers.gramian import normalize

RESCALES = (0, 1, 2)


@dataclasses.dataclass(frozen=True)
class CAGrad(GramianWeighting):
    """Conflict-averse gradient descent (Liu et al. 2021,
    https://arxiv.org/abs/2110.14048).

    Maximises the worst task improvement within a ball of radius
    c ||g0|| around the average gradient g0. Through its dual, the update is
    d = g0 + (c ||g0|| / ||g_w||) g_w with g_w = J^T w and
    w = argmin_{w in simplex} g_w . g0 + c ||g0|| ||g_w||. The official code
    then divides by 1 + c^2 (`rescale=1`, the default here), or by 1 + c
    (`rescale=2`), or not at all (`rescale=0`).

    Args:
        c: Radius of the ball, relative to ||g0|| (0 gives the mean).
        rescale: 0, 1 or 2 (see above).
        norm_eps: Below this the update counts as zero.

    Example:
    >>> CAGrad(c=0.5, rescale=0).aggregate([[-4.0, 1, 1], [6, 1, 1]]).round(4).tolist()
    [0.1835, 1.2041, 1.2041]
    """

    key = "cagrad"
    claims = frozenset({"permutation_invariant"})

    c: float = 0.5
    rescale: int = 1
    norm_eps: float = 1e-4

    def check(self) -> None:
        check_at_least(self, 0.0, c=self.c)
        if self.rescale not in RESCALES:
            raise ValueError(f"CAGrad: rescale must be 0, 1 or 2, got {self.rescale}.")
        check_positive(self, norm_eps=self.norm_eps)

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        gramian = inputs.gramian
        k = len(gramian)
        g = normalize(gramian, self.norm_eps)
        mean = np.full(k, 1.0 / k)
        if not np.any(g):
            return np.zeros(k), state
        b = g @ mean  # g_i . g0 for every task
        radius = self.c * np.sqrt(max(float(mean @ b), 0.0))

        def value(w: Array) -> float:
            return float(w @ b + radius * np.sqrt(max(float(w @ g @ w), 1e-30)))

        def grad(w: Array) -> Array:
            norm = np.sqrt(max(float(w @ g @ w), 1e-30))
            return b + radius * (g @ w) / norm

        result = minimize(
            value,
            mean,
            jac=grad,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * k,
            constraints=[
                {
                    "type": "eq",
                    "fun": lambda w: w.sum() - 1.0,
                    "jac": lambda w: np.ones_like(w),
                }
            ],
            options={"ftol": 1e-12, "maxiter": 500},
        )
        w = np.clip(result.x, 0.0, None)
        w = w / w.sum()
        norm_w = np.sqrt(max(float(w @ g @ w), 0.0))
        if radius == 0.0:
            weights = mean.copy()
        elif norm_w < self.norm_eps:
            # Zero is in (almost) the convex hull: a Pareto-stationary point.
            weights = np.zeros(k)
        else:
            weights = mean + (radius / norm_w) * w
        divisor = {0: 1.0, 1: 1.0 + self.c**2, 2: 1.0 + self.c}[self.rescale]
        return weights / divisor, state
