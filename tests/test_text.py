"""Byte encoding on the host and one-hot in the graph."""

from __future__ import annotations

import numpy as np
import pytest
from layer_checks import as_numpy, check_layer

from keras_mtl.data.text import encode_bytes
from keras_mtl.layers import ByteOneHot


def test_pre_padding_truncation_and_counts():
    enc = encode_bytes(["abc", "x" * 10, "é\x00"], length=5)
    assert enc.ids.dtype == np.uint8
    assert enc.ids.tolist() == [
        [0, 0, 97, 98, 99],
        [120] * 5,
        [0, 0, 195, 169, 32],  # UTF-8 bytes; NUL becomes a space
    ]
    assert enc.truncated == 1
    assert enc.lengths.tolist() == [3, 5, 3]


def test_post_padding_and_errors():
    assert encode_bytes(["ab"], length=4, padding="post").ids.tolist() == [
        [97, 98, 0, 0]
    ]
    with pytest.raises(ValueError, match="padding must be 'pre' or 'post'"):
        encode_bytes(["a"], padding="left")
    with pytest.raises(TypeError, match="Text 1 is int, not str"):
        encode_bytes(["a", 3])


def test_memory_is_one_byte_per_position():
    enc = encode_bytes(["tweet"] * 1000)
    assert enc.ids.nbytes == 1000 * 280


def test_one_hot_matches_numpy(rng):
    ids = rng.integers(0, 256, (3, 7)).astype("uint8")
    expected = np.eye(256, dtype="float32")[ids]
    expected[ids == 0] = 0
    np.testing.assert_array_equal(as_numpy(ByteOneHot()(ids)), expected)


@pytest.mark.model
def test_one_hot_layer_checks(rng, tmp_path):
    ids = rng.integers(0, 256, (8, 6)).astype("int32")
    check_layer(ByteOneHot(), ids, (8, 6, 256), tmp_path)
