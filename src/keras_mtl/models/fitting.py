"""The callbacks `MultiTaskModel.fit` adds to the user's: early stopping by
default, the label and non-finite guards, the checkpoint's stateful
companions, and the epoch counter of per-epoch balancers."""

from __future__ import annotations

from typing import Any

import keras

from keras_mtl import callbacks as callbacks_module
from keras_mtl.training import defaults


def training_callbacks(
    model: Any,
    callbacks: Any,
    epochs: int | None,
    early_stopping: int | None,
    validating: bool,
) -> tuple[list[Any], int, Any]:
    """`fit`'s callbacks, its number of epochs and the checkpoint among the
    callbacks (or None).

    Without `epochs`, up to `defaults.EPOCHS` with early stopping after
    `defaults.PATIENCE` epochs (unless `early_stopping` says otherwise).
    Early stopping watches the validation loss when `validating`, else the
    training loss, and restores the best weights; it comes before the
    checkpoint, which then saves its state of that epoch.
    """
    callbacks = list(callbacks or [])
    if epochs is None:
        epochs = defaults.EPOCHS
        if early_stopping is None:
            early_stopping = defaults.PATIENCE
    checkpoint = next(
        (c for c in callbacks if isinstance(c, callbacks_module.Checkpoint)), None
    )
    if early_stopping and not any(
        isinstance(c, keras.callbacks.EarlyStopping) for c in callbacks
    ):
        stopper = callbacks_module.EarlyStopping(
            total_epochs=epochs,
            monitor="val_loss" if validating else "loss",
            patience=int(early_stopping),
            restore_best_weights=True,
        )
        at = callbacks.index(checkpoint) if checkpoint is not None else None
        callbacks.insert(len(callbacks) if at is None else at, stopper)
    if checkpoint is not None:
        checkpoint.stateful = [
            c for c in callbacks if isinstance(c, callbacks_module.EarlyStopping)
        ]
    mode = getattr(model, "_on_nonfinite", None)
    if mode is not None:
        # First, so that the step flag is gone before other callbacks (and
        # the progress bar) see the logs.
        callbacks.insert(0, callbacks_module.NonFiniteGuard(mode, checkpoint))
    callbacks.insert(0, callbacks_module.LabelGuard())
    resolve_monitor_modes(model, callbacks)
    if getattr(model, "_balancing", None) is not None:
        callbacks.append(EpochCounter(model.balancer_state))
    return callbacks, epochs, checkpoint


def resolve_monitor_modes(model: Any, callbacks: list[Any]) -> None:
    """Gives Keras's monitoring callbacks (`EarlyStopping`, `ModelCheckpoint`,
    `ReduceLROnPlateau`) in `mode="auto"` the direction of a task's metric
    they watch (`val_<task>_accuracy`: up, `<task>_loss`: down). Keras
    finds a direction only among its own compiled metrics."""
    metrics = getattr(model, "_compile_metrics", None)
    if not hasattr(metrics, "directions"):
        return
    directions = metrics.directions()
    for callback in callbacks:
        monitor = getattr(callback, "monitor", None)
        if getattr(callback, "mode", None) != "auto" or not isinstance(monitor, str):
            continue
        direction = directions.get(monitor.removeprefix("val_"))
        if direction is not None:
            callback.mode = "max" if direction == "up" else "min"


class EpochCounter(keras.callbacks.Callback):
    """Tells the balancer which epoch runs (DWA and STCH work per epoch)."""

    def __init__(self, state: Any) -> None:
        super().__init__()
        self.state = state

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.state.epoch.assign(epoch)
