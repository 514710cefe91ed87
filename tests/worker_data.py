"""The small partially labelled problem the multi-device workers train
(`distribution_worker.py`, `mirrored_worker.py`); import it after the
worker has set its backend and devices."""

from __future__ import annotations

import numpy as np

import keras_mtl

TASKS = [
    keras_mtl.Task("up"),
    keras_mtl.Task("kind", "multiclass", num_classes=3),
    keras_mtl.Task("r", "regression"),
]
PARAMS = {"fixed": {"weights": [1.0, 2.0, 0.5]}}


def problem() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """32 samples; labels missing unevenly across a batch of 16's halves,
    so only masks reduced over the global batch give the one-device
    update."""
    rng = np.random.default_rng(0)
    x = {"v": rng.normal(size=(32, 6)).astype("float32")}
    y = {
        "up": (x["v"][:, 0] > 0).astype("float32"),
        "kind": rng.integers(0, 3, 32),
        "r": x["v"][:, 1].copy(),
    }
    y["up"][:7] = np.nan
    y["kind"][20:25] = -1
    return x, y
