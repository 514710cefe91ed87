"""Early stopping whose state checkpoints hold."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's `EarlyStopping` whose state a `Checkpoint` saves and restores:
    a run killed and resumed stops at the same epoch and restores the same
    best weights as an uninterrupted one.

    `MultiTaskModel.fit(early_stopping=N)` (and `fit()` with no `epochs`)
    uses it. Within a resumed `fit`, which runs the interrupted epoch's tail
    and the remaining epochs as two Keras `fit` calls, its state carries
    over, and the best weights are restored only when training really ends.

    Args:
        total_epochs: The epochs the whole run asks for.
        **kwargs: `keras.callbacks.EarlyStopping` arguments.
    """

    def __init__(self, total_epochs: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.total_epochs = total_epochs
        self.last_epoch = -1
        self._carry = False

    @property
    def finished(self) -> bool:
        """Whether it has stopped training."""
        return self.stopped_epoch > 0

    def checkpoint_state(self) -> tuple[dict[str, Any], list[np.ndarray]]:
        """JSON-ready counters, and the best weights (empty when none)."""
        best = None if self.best is None else float(self.best)
        meta = {
            "wait": int(self.wait),
            "best": best,
            "best_epoch": int(self.best_epoch),
            "stopped_epoch": int(self.stopped_epoch),
            "last_epoch": int(self.last_epoch),
            "has_weights": self.best_weights is not None,
        }
        weights = [np.asarray(w) for w in self.best_weights or []]
        return meta, weights

    def restore_checkpoint_state(
        self, meta: dict[str, Any], weights: list[np.ndarray]
    ) -> None:
        self.wait = meta["wait"]
        self.best = meta["best"]
        self.best_epoch = meta["best_epoch"]
        self.stopped_epoch = meta["stopped_epoch"]
        self.last_epoch = meta["last_epoch"]
        self.best_weights = list(weights) if meta["has_weights"] else None
        self._carry = True

    def on_train_begin(self, logs: Any = None) -> None:
        if self._carry:
            return  # a resumed run (or its second part): keep the counters
        super().on_train_begin(logs)
        self.last_epoch = -1
        self._carry = True

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        super().on_epoch_end(epoch, logs)
        self.last_epoch = epoch

    def on_train_end(self, logs: Any = None) -> None:
        done = self.finished or (
            self.total_epochs is not None and self.last_epoch + 1 >= self.total_epochs
        )
        if done or self.total_epochs is None:
            super().on_train_end(logs)
            self._carry = False
