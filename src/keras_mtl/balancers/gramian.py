"""Small operations on Gramians G = J J^T shared by several methods."""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

Array = np.ndarray


def normalize(gramian: Array, eps: float) -> Array:
    """G divided by its trace (the Gramian of J scaled to unit Frobenius
    norm); zero when the trace is at most `eps`."""
    trace = float(np.trace(gramian))
    if trace <= eps:
        return np.zeros_like(gramian)
    return gramian / trace


def regularize(gramian: Array, eps: float) -> Array:
    """G + eps I: positive definite despite rounding."""
    return gramian + eps * np.eye(len(gramian))


def norms(gramian: Array) -> Array:
    """Norms of the rows of J: the square roots of G's diagonal."""
    return np.sqrt(np.maximum(np.diag(gramian), 0.0))


def cosines(gramian: Array, eps: float = 1e-12) -> Array:
    """Cosine similarities of the rows of J (0 where a row is zero)."""
    n = norms(gramian)
    scale = np.outer(n, n)
    return np.where(scale > eps, gramian / np.maximum(scale, eps), 0.0)


def factor(gramian: Array) -> Array:
    """A square matrix A with A^T A = G (from the eigendecomposition; robust
    to tiny negative eigenvalues from rounding)."""
    values, vectors = np.linalg.eigh((gramian + gramian.T) / 2)
    return np.sqrt(np.maximum(values, 0.0))[:, None] * vectors.T


# ---------------------------------------------------------------------------
# The same on the device, in keras.ops (float32), for methods with a closed
# form (`GramianWeighting.on_device`).


def device_norms(gramian: Any) -> Any:
    """`norms` in keras.ops."""
    return ops.sqrt(ops.maximum(ops.diagonal(gramian), 0.0))


def device_pinv(gramian: Any) -> Any:
    """The pseudo-inverse of a symmetric positive semi-definite G in
    keras.ops: eigenvalues above max * k * float32's eps are inverted, the
    rest dropped (`np.linalg.pinv(..., hermitian=True)` up to float32)."""
    values, vectors = eigh_parts(gramian)
    k = gramian.shape[0]
    keep = values > tolerance(values, k)
    inverse = ops.where(keep, 1.0 / ops.where(keep, values, 1.0), 0.0)
    return ops.matmul(vectors * inverse, ops.transpose(vectors))


def eigh_parts(gramian: Any) -> tuple[Any, Any]:
    """Eigenvalues and eigenvectors of (G + G^T) / 2."""
    values, vectors = ops.eigh((gramian + ops.transpose(gramian)) / 2)
    return values, vectors


def tolerance(values: Any, k: int) -> Any:
    """Eigenvalues at or below this count as zero."""
    return ops.maximum(ops.max(values), 0.0) * k * float(np.finfo(np.float32).eps)
