"""Aligned-MTL: align the principal components of the task gradients."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
from keras import ops

from keras_mtl.balancers.base import Array, Context, GramianWeighting, Inputs
from keras_mtl.balancers.gramian import eigh_parts, tolerance

SCALES = ("min", "median", "rmse")


@dataclasses.dataclass(frozen=True)
class AlignedMTL(GramianWeighting):
    """Aligned-MTL (Senushkin et al. 2023, https://arxiv.org/abs/2305.19000).

    Makes the gradient system well conditioned: with G = V diag(l) V^T,
    the rows are whitened (V diag(l^-1/2) V^T) and rescaled so that every
    principal direction gets the same magnitude sqrt(s), s the smallest
    kept eigenvalue (`"min"`), their lower median or their mean (`"rmse"`).
    Weights w = B (1/k) with B = sqrt(s) V_r diag(l_r^-1/2) V_r^T over the
    numerically non-zero eigenvalues.

    Args:
        scale: `"min"`, `"median"` or `"rmse"`.

    Example:
    >>> AlignedMTL().aggregate([[-4.0, 1, 1], [6, 1, 1]]).round(4).tolist()
    [0.2133, 0.9673, 0.9673]
    """

    key = "aligned_mtl"
    device = True
    claims = frozenset({"permutation_invariant"})

    scale: str = "min"

    def check(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(
                f"AlignedMTL: scale must be one of {', '.join(SCALES)}, "
                f"got {self.scale!r}."
            )

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        gramian = inputs.gramian
        k = len(gramian)
        values, vectors = np.linalg.eigh((gramian + gramian.T) / 2)
        tol = float(values.max(initial=0.0)) * k * float(np.finfo(np.float32).eps)
        keep = values > tol
        if not keep.any():
            return np.zeros(k), state
        kept, basis = values[keep], vectors[:, keep]
        if self.scale == "min":
            s = float(kept.min())
        elif self.scale == "median":
            s = float(np.sort(kept)[(len(kept) - 1) // 2])  # the lower median
        else:
            s = float(kept.mean())
        b = np.sqrt(s) * (basis / np.sqrt(kept)) @ basis.T
        return b @ np.full(k, 1.0 / k), state

    def on_device(self, gramian: Any, present: Any) -> Any:
        values, vectors = eigh_parts(gramian)
        keep = values > tolerance(values, gramian.shape[0])
        kept = ops.where(keep, values, 0.0)
        count = ops.sum(ops.cast(keep, "float32"))
        if self.scale == "min":
            s = ops.min(ops.where(keep, values, float("inf")))
        elif self.scale == "median":
            # The lower median of the kept eigenvalues (ascending from eigh):
            # the dropped ones come first, so it sits at index
            # (dropped + (kept - 1) // 2).
            dropped = gramian.shape[0] - count
            index = ops.cast(dropped + ops.floor((count - 1) / 2), "int32")
            s = ops.take(values, ops.maximum(index, 0))
        else:
            s = ops.sum(kept) / ops.maximum(count, 1.0)
        scale = ops.where(
            keep,
            ops.sqrt(ops.maximum(s, 0.0)) / ops.sqrt(ops.where(keep, values, 1.0)),
            0.0,
        )
        b = ops.matmul(vectors * scale, ops.transpose(vectors))
        weights = ops.matmul(b, present / ops.maximum(ops.sum(present), 1.0))
        return ops.where(count > 0, weights, 0.0)
