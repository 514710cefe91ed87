"""Ready-made encoders: shapes, `.keras` round-trips and a training step."""

from __future__ import annotations

import numpy as np
import pytest
from layer_checks import check_layer

from keras_mtl import encoders

pytestmark = pytest.mark.model

CASES = [
    ("lstm", {"units": 6, "symbols": "onehot"}, 6),
    ("lstm", {"units": 6, "symbols": "embedding", "embedding_dim": 4}, 6),
    ("gru", {"units": 5, "symbols": "onehot"}, 5),
    ("conv1d", {"filters": 7, "kernel_size": 3, "symbols": "embedding"}, 7),
    ("transformer", {"dim": 8, "heads": 2, "ff_dim": 16, "max_length": 10}, 8),
]


@pytest.mark.parametrize(("name", "kwargs", "width"), CASES)
def test_encoder_on_byte_ids(name, kwargs, width, rng, tmp_path):
    ids = rng.integers(0, 256, (16, 10)).astype("int32")
    check_layer(encoders.get(name, **kwargs), ids, (16, width), tmp_path)


def test_float_sequences_without_symbols(rng, tmp_path):
    x = rng.normal(size=(16, 9, 3)).astype("float32")
    check_layer(encoders.LSTMEncoder(4), x, (16, 4), tmp_path)


def test_lstm_encoder_has_the_seed_lstm_weights():
    layer = encoders.LSTMEncoder(64, symbols="onehot")
    layer.build((None, 280))
    assert layer.count_params() == 82_176


def test_bad_arguments():
    with pytest.raises(
        ValueError,
        match="symbols must be one of None, 'onehot', 'embedding', got 'bytes'",
    ):
        encoders.LSTMEncoder(4, symbols="bytes")
    with pytest.raises(ValueError, match=r"heads \(3\) must divide dim \(8\)"):
        encoders.TransformerEncoder(dim=8, heads=3)
    np.testing.assert_equal(encoders.get("conv1d").filters, 64)
