"""The new user's 3-task image model (digit, parity, >= 5) written as a
config: the built-in image encoder, and the user's own Conv2D stack as
Keras layer configs (safe mode)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_mtl.config import Config, ConfigError

pytestmark = pytest.mark.model

HEAD = """
[model]
name = "digits"
[inputs.image]
shape = [8, 8, 1]
[[tasks]]
name = "digit"
kind = "multiclass"
num_classes = 10
[[tasks]]
name = "parity"
[[tasks]]
name = "big"
[compile]
optimizer = { name = "adam", learning_rate = 0.01 }
"""

BUILT_IN = """
[encoder]
name = "conv2d"
filters = [8]
dense = 32
"""

OWN_STACK = """
[encoder]
name = "layers"
layers = [
  { class_name = "Conv2D", filters = 8, kernel_size = 3, padding = "same", activation = "relu" },
  { class_name = "MaxPooling2D", pool_size = 2 },
  { class_name = "Flatten" },
  { class_name = "Dense", config = { units = 32, activation = "relu" } },
]
"""


def _digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None][:600]
    d = digits.target[:600]
    y = {
        "digit": d,
        "parity": (d % 2).astype("float32"),
        "big": (d >= 5).astype("float32"),
    }
    return {"image": x}, y


@pytest.mark.parametrize("encoder", [BUILT_IN, OWN_STACK], ids=["conv2d", "layers"])
def test_image_model_from_a_config_learns_and_round_trips(encoder, tmp_path):
    config = Config.from_string(HEAD + encoder)
    model = config.build_model()
    model.compile(**config.compile_kwargs())
    x, y = _digits()
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0)
    logs = history.history
    # Far above chance (0.1 / 0.5 / 0.5) after four epochs on 600 digits.
    assert logs["digit_accuracy"][-1] > 0.6, logs["digit_accuracy"]
    assert logs["parity_accuracy"][-1] > 0.7 and logs["big_accuracy"][-1] > 0.7
    path = tmp_path / "digits.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(
        again.predict(x, verbose=0)["digit"],
        model.predict(x, verbose=0)["digit"],
        rtol=1e-5,
        atol=1e-6,
    )


def test_a_layer_stack_never_runs_code():
    lam = (
        '[encoder]\nname = "layers"\nlayers = [{ class_name = "Lambda", '
        'config = { function = "lambda x: x" } }]\n'
    )
    with pytest.raises((ConfigError, ValueError), match="layer 1 \\(Lambda\\)"):
        Config.from_string(HEAD + lam).build_model()
    bad = '[encoder]\nname = "layers"\nlayers = [{ class_name = "Dense" }]\n'
    with pytest.raises((ConfigError, ValueError), match="layer 1 \\(Dense\\)"):
        Config.from_string(HEAD + bad).build_model()
