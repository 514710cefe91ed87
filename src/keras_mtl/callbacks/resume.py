"""Resuming a run from its newest checkpoint: `fit` replays the rest of the
interrupted epoch over the same batches, in the same order, and goes on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from keras_mtl.callbacks.checkpoint import Checkpoint


class EpochSync(keras.callbacks.Callback):
    """Tells a replayable data set which epoch runs."""

    def __init__(self, data: Any) -> None:
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.data.set_epoch(epoch)


def _replayable(
    checkpoint: Checkpoint,
    x: Any,
    y: Any,
    batch_size: int | None,
    shuffle: bool,
    sample_weight: Any,
) -> Any:
    from keras_mtl.data.arrays import ArrayBatches

    if hasattr(x, "set_epoch"):
        if y is not None or sample_weight is not None:
            raise ValueError(
                f"fit: x is a data set ({type(x).__name__}); give its labels "
                "through it, not as y or sample_weight."
            )
        return x
    if isinstance(x, keras.utils.PyDataset) or hasattr(x, "element_spec"):
        raise ValueError(
            f"Checkpoint resumes exactly from arrays, MixedBatches or a "
            f"streamed table, which replay any batch; got {type(x).__name__}."
        )
    return ArrayBatches(
        x, y, sample_weight, batch_size or 32, shuffle, seed=checkpoint.seed
    )


def fit_resumable(
    model: Any,
    fit: Callable[..., Any],
    checkpoint: Checkpoint,
    x: Any,
    y: Any,
    batch_size: int | None,
    epochs: int,
    shuffle: bool,
    sample_weight: Any,
    initial_epoch: int,
    callbacks: list[Any],
    kwargs: dict[str, Any],
) -> Any:
    """`fit` that resumes from the checkpoint's newest position: the rest of
    the interrupted epoch first, then the remaining epochs."""
    for key in ("validation_split", "steps_per_epoch"):
        if kwargs.get(key):
            raise ValueError(
                f"fit: {key} cannot be combined with a Checkpoint (give "
                "validation_data, and let the data set define an epoch)."
            )
    data = _replayable(checkpoint, x, y, batch_size, shuffle, sample_weight)
    callbacks = [EpochSync(data), *callbacks]
    checkpoint.resuming_fit = True
    try:
        return _fit_from_checkpoint(
            model, fit, checkpoint, data, epochs, initial_epoch, callbacks, kwargs
        )
    finally:
        checkpoint.resuming_fit = False


def _fit_from_checkpoint(
    model: Any,
    fit: Callable[..., Any],
    checkpoint: Checkpoint,
    data: Any,
    epochs: int,
    initial_epoch: int,
    callbacks: list[Any],
    kwargs: dict[str, Any],
) -> Any:
    from keras_mtl.data.arrays import Tail

    # The data set orders its batches itself (Keras would shuffle them).
    kwargs = {**kwargs, "shuffle": False}
    checkpoint.steps_per_epoch = len(data)
    position = checkpoint.restore(model)
    start = initial_epoch
    histories = []
    if position is not None:
        if checkpoint.steps_per_epoch != len(data):
            raise ValueError(
                f"Checkpoint {position.path} was written with "
                f"{checkpoint.steps_per_epoch} batches per epoch, this run has "
                f"{len(data)}: resume with the same data and batch size."
            )
        start = position.epoch
        done = [c for c in checkpoint.stateful if getattr(c, "finished", False)]
        if done:
            # The run had stopped early: nothing is left to train.
            for callback in done:
                callback.set_model(model)
                callback.on_train_end()
            start = epochs
        if position.step > 0 and position.epoch < epochs and not done:
            checkpoint.offset = position.step
            try:
                histories.append(
                    fit(
                        Tail(data, position.epoch, position.step),
                        epochs=position.epoch + 1,
                        initial_epoch=position.epoch,
                        callbacks=callbacks,
                        **kwargs,
                    )
                )
            finally:
                checkpoint.offset = 0
            start = position.epoch + 1
    if start < epochs and not (histories and model.stop_training):
        histories.append(
            fit(
                data,
                epochs=epochs,
                initial_epoch=start,
                callbacks=callbacks,
                **kwargs,
            )
        )
    history = keras.callbacks.History()
    history.set_model(model)
    history.history = {k: list(v) for k, v in checkpoint.history.items()}
    history.epoch = list(range(len(next(iter(history.history.values()), []))))
    history.params = histories[-1].params if histories else {}
    return history
