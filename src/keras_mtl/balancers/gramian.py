"""Small operations on Gramians G = J J^T shared by several methods."""

from __future__ import annotations

import numpy as np

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
