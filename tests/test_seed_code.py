"""The seed's own code, with only its imports changed, runs as written."""

from __future__ import annotations

import shutil

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.model

SEED_CASE_1 = """
import keras
import numpy as np
from keras.layers import Input, LSTM, Dense
from keras_mtl import Model
from keras.models import Sequential
from keras.layers import Dense
from keras.utils import plot_model

tweet_a = Input(shape=(280, 256))
tweet_b = Input(shape=(280, 256))

shared_lstm = LSTM(64)

encoded_a = shared_lstm(tweet_a)
encoded_b = shared_lstm(tweet_b)

merged_vector = keras.layers.concatenate([encoded_a, encoded_b], axis=-1)

predictions1 = Dense(1, activation='sigmoid')(merged_vector)
predictions2 = Dense(1, activation='sigmoid')(merged_vector)

model = Model(inputs=[tweet_a, tweet_b], outputs=[predictions1, predictions2])

model.compile(optimizer='rmsprop',
              loss='binary_crossentropy',
              metrics=['accuracy'])
"""

SEED_CASE_2 = (
    SEED_CASE_1.split("merged_vector =")[0]
    + """
predictions1 = Dense(1, activation='sigmoid')(encoded_a )
predictions2 = Dense(1, activation='sigmoid')(encoded_b)

model = Model(inputs=[tweet_a, tweet_b], outputs=[predictions1, predictions2])

model.compile(optimizer='rmsprop',
              loss='binary_crossentropy',
              metrics=['accuracy'])
"""
)


def test_plain_keras_rejects_the_seed_compile():
    a, b = keras.Input((3, 4)), keras.Input((3, 4))
    lstm = keras.layers.LSTM(2)
    merged = keras.layers.concatenate([lstm(a), lstm(b)])
    outs = [keras.layers.Dense(1, activation="sigmoid")(merged) for _ in range(2)]
    model = keras.Model([a, b], outs)
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    x = [np.zeros((2, 3, 4), "float32")] * 2
    with pytest.raises(ValueError, match="metrics"):
        model.fit(x, [np.zeros((2, 1), "float32")] * 2, verbose=0)


@pytest.mark.parametrize(
    ("code", "params"), [(SEED_CASE_1, 82_434), (SEED_CASE_2, 82_306)]
)
def test_seed_code_runs(code, params, tmp_path, rng):
    scope: dict = {}
    exec(compile(code, "seed.py", "exec"), scope)
    model = scope["model"]
    assert model.count_params() == params
    names = model.output_names
    x = [rng.random((4, 280, 256)).astype("float32") for _ in range(2)]
    y = [rng.integers(0, 2, (4, 1)).astype("float32") for _ in range(2)]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert set(history.history) == {
        "loss",
        f"{names[0]}_loss",
        f"{names[1]}_loss",
        f"{names[0]}_accuracy",
        f"{names[1]}_accuracy",
    }
    # The summed loss is the sum of the per-output losses, as in Keras.
    h = history.history
    assert h["loss"][0] == pytest.approx(
        h[f"{names[0]}_loss"][0] + h[f"{names[1]}_loss"][0], rel=1e-5
    )
    p = model.predict(x, verbose=0)
    assert len(p) == 2 and p[0].shape == (4, 1)
    if shutil.which("dot"):
        scope["plot_model"](model, to_file=str(tmp_path / "seed.png"))
        assert (tmp_path / "seed.png").stat().st_size > 1000
