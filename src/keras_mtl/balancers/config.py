"""ConFIG: a conflict-free direction with equal cosine to every task."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
from keras import ops

from keras_mtl.balancers.base import Array, Context, GramianWeighting, Inputs
from keras_mtl.balancers.gramian import device_norms, device_pinv, norms


@dataclasses.dataclass(frozen=True)
class ConFIG(GramianWeighting):
    """ConFIG (Liu et al. 2024, https://arxiv.org/abs/2408.11104, Eq. 2).

    The direction u with the same cosine to every task gradient (the
    minimum-norm solution x of U x = 1 for the unit gradients U, normalised),
    scaled by the sum of the gradients' projections on it:
    d = (sum_i g_i . u) u. In weight space x = J^T a with
    a = D^-1 (D^-1 G D^-1)^+ 1, D the gradient norms.

    Example:
    >>> ConFIG().aggregate([[-4.0, 1, 1], [6, 1, 1]]).round(4).tolist()
    [0.1588, 2.0706, 2.0706]
    """

    key = "config"
    device = True
    claims = frozenset({"permutation_invariant", "scale_invariant"})

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        gramian = inputs.gramian
        k = len(gramian)
        n = norms(gramian)
        inverse = np.where(n > 0, 1.0 / np.where(n > 0, n, 1.0), 0.0)
        unit = gramian * np.outer(inverse, inverse)
        a = inverse * (np.linalg.pinv(unit, rcond=1e-12, hermitian=True) @ np.ones(k))
        squared = float(a @ gramian @ a)
        if squared <= 1e-300:
            return np.zeros(k), state
        length = float(np.ones(k) @ gramian @ a)
        return (length / squared) * a, state

    def on_device(self, gramian: Any, present: Any) -> Any:
        n = device_norms(gramian)
        inverse = ops.where(n > 0, 1.0 / ops.where(n > 0, n, 1.0), 0.0)
        unit = gramian * ops.outer(inverse, inverse)
        a = inverse * ops.matmul(device_pinv(unit), present)
        ga = ops.matmul(gramian, a)
        squared = ops.sum(a * ga)
        length = ops.sum(present * ga)
        small = squared <= 1e-30
        return ops.where(small, 0.0, (length / ops.where(small, 1.0, squared)) * a)
