"""The seed's two models, exactly, and their byte-id variants."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_mtl.analysis import connected_inputs
from keras_mtl.models import presets

pytestmark = pytest.mark.model


def test_parameter_counts_match_the_seed():
    # LSTM(64) on 256 features: 4 * (64 * (256 + 64) + 64) = 82,176; heads
    # Dense(1) on 128 (Case 1) or 64 (Case 2) inputs.
    assert presets.seed_case1().count_params() == 82_176 + 2 * 129 == 82_434
    assert presets.seed_case2().count_params() == 82_176 + 2 * 65 == 82_306
    assert presets.seed_case1(byte_ids=True).count_params() == 82_434
    assert presets.seed_case2(byte_ids=True).count_params() == 82_306


def test_seed_inputs_and_heads():
    model = presets.seed_case1()
    assert [tuple(t.shape) for t in model.inputs] == [(None, 280, 256)] * 2
    assert model.task_names == ["a_negative", "same_sentiment"]
    assert [t.kind for t in model.tasks] == ["binary", "binary"]
    shared = [layer for layer in model.layers if layer.name == "shared_lstm"]
    assert len(shared) == 1  # one LSTM, applied to both tweets


def test_case_graphs():
    assert connected_inputs(presets.seed_case1()) == {
        "a_negative": {"tweet_a", "tweet_b"},
        "same_sentiment": {"tweet_a", "tweet_b"},
    }
    assert connected_inputs(presets.seed_case2()) == {
        "a_negative": {"tweet_a"},
        "same_sentiment": {"tweet_b"},
    }


@pytest.mark.parametrize("factory", [presets.seed_case1, presets.seed_case2])
def test_byte_ids_give_the_seed_predictions(factory, rng):
    length = 40
    floats = factory(length=length)
    ids_model = factory(byte_ids=True, length=length)
    ids_model.set_weights(floats.get_weights())
    ids = rng.integers(0, 256, (6, length)).astype("uint8")
    ids[:, :5] = 0  # padding
    eye = np.eye(256, dtype="float32")
    eye[0] = 0
    x_ids = {"tweet_a": ids, "tweet_b": ids[::-1].copy()}
    x_float = {k: eye[v] for k, v in x_ids.items()}
    p_float = floats.predict_tasks(x_float)
    p_ids = ids_model.predict_tasks(x_ids)
    for task in floats.task_names:
        np.testing.assert_allclose(p_ids[task], p_float[task], rtol=1e-5, atol=1e-6)


def test_pair_model_parameters():
    model = presets.pair_model()
    # LSTM 82,176; each head: Dense(64) on 4 * 64 = 256 features + Dense(1).
    assert model.count_params() == 82_176 + 2 * ((256 * 64 + 64) + 65)
    assert keras.utils.model_to_dot(model) is not None
