"""One check for every layer: shape, config round-trip, `.keras` round-trip
with identical predictions, and a training step that lowers the loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np


def check_layer(
    layer: keras.layers.Layer,
    x: np.ndarray | list[np.ndarray],
    expected_shape: tuple,
    tmp_path: Path,
) -> keras.Model:
    """Runs the checks and returns the small model used for them."""
    xs = x if isinstance(x, list) else [x]
    inputs = [keras.Input(v.shape[1:], dtype=str(v.dtype)) for v in xs]
    out = layer(inputs if isinstance(x, list) else inputs[0])
    assert tuple(out.shape[1:]) == tuple(expected_shape[1:]), out.shape
    value = keras.ops.convert_to_numpy(layer(xs if isinstance(x, list) else xs[0]))
    assert value.shape == expected_shape

    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()

    flat = keras.layers.Flatten()(out) if len(out.shape) > 2 else out
    pred = keras.layers.Dense(1)(flat)
    model = keras.Model(inputs, pred)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    target = np.linspace(-1, 1, len(xs[0])).reshape(-1, 1).astype("float32")
    first = model.evaluate(xs, target, verbose=0)
    model.fit(xs, target, epochs=10, batch_size=len(target), verbose=0)
    assert model.evaluate(xs, target, verbose=0) < first
    before = model.predict(xs, verbose=0)
    path = tmp_path / "layer.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(xs, verbose=0), before)

    return model


def lowered_train_step(model: Any, x: Any, y: Any) -> Any:
    """JAX's lowering of the model's train step for one batch (its program
    text, or compiled, its memory)."""
    import jax

    model.optimizer.build(model.trainable_variables)
    state = model._get_jax_state(
        trainable_variables=True,
        non_trainable_variables=True,
        optimizer_variables=True,
        metrics_variables=True,
    )
    return jax.jit(model.train_step).lower(state, (x, y))


def as_numpy(value: Any) -> np.ndarray:
    return keras.ops.convert_to_numpy(value)


class InterruptAt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt after batch `batch` of the first epoch."""

    def __init__(self, batch: int) -> None:
        super().__init__()
        self.batch = batch

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if batch == self.batch:
            raise KeyboardInterrupt


def assert_resumes_exactly(run: Any, tmp_path: Any, stop_at: int) -> None:
    """`run(folder, extra_callbacks) -> (model, history)` trains with a
    Checkpoint in `folder`: a run cut at batch `stop_at` and resumed ends
    with the weights and logs of an uncut run."""
    import pytest

    whole, history = run(tmp_path / "whole", [])
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", [InterruptAt(stop_at)])
    resumed, again = run(tmp_path / "cut", [])
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.history == history.history
