"""Ready-made encoders: shapes, `.keras` round-trips and a training step."""

from __future__ import annotations

import numpy as np
import pytest
from layer_checks import as_numpy, check_layer

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


@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize("symbols", ["onehot", None])
def test_skip_padding_makes_the_encoding_independent_of_padding(name, symbols, rng):
    """With skip_padding, leading padding is a no-op: a text's encoding is
    the same at every width, in the fast path and in Keras's masked layer."""
    import keras

    keras.utils.set_random_seed(0)
    layer = encoders.get(name, units=5, symbols=symbols, skip_padding=True)
    ids = rng.integers(1, 256, (6, 9)).astype("int32")
    ids[np.arange(9) < rng.integers(0, 9, (6, 1))] = 0
    wide = np.concatenate([np.zeros((6, 7), "int32"), ids], axis=1)
    if symbols is None:
        ids, wide = (
            np.eye(256, dtype="float32")[a] * (a > 0)[..., None] for a in (ids, wide)
        )
    layer.build(ids.shape)
    # Random weights: from Keras's zero bias, padding keeps a zero state anyway.
    layer.set_weights([rng.normal(size=w.shape) * 0.5 for w in layer.get_weights()])
    short = as_numpy(layer(ids))
    np.testing.assert_allclose(as_numpy(layer(wide)), short, atol=1e-6)
    sequence = ids if layer.symbol_layer is None else layer.symbol_layer(ids)
    masked = layer.rnn(sequence, mask=layer.padding_mask(ids))
    np.testing.assert_allclose(as_numpy(masked), short, atol=1e-5)
    plain = encoders.get(name, units=5, symbols=symbols)
    plain.build(ids.shape)
    plain.set_weights(layer.get_weights())
    # Without it, the state runs over the padding (the seed's LSTM).
    assert np.abs(as_numpy(plain(wide)) - as_numpy(plain(ids))).max() > 1e-3


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
