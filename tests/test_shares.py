"""Each process's share of the data (`keras_mtl.data.shares`): the shares
put back together are the global batches, and padding is unlabelled."""

from __future__ import annotations

import numpy as np
import pytest

import keras_mtl
from keras_mtl.data import (
    ArrayBatches,
    BucketedBatches,
    MixedBatches,
    ProcessShare,
    Source,
)
from keras_mtl.data.shares import process_rows, split_share


def _data(n: int = 23) -> tuple[dict, dict, np.ndarray]:
    rng = np.random.default_rng(0)
    x = {"v": rng.normal(size=(n, 3)).astype("float32")}
    y = {
        "up": (rng.random(n) > 0.5).astype("float32"),
        "kind": rng.integers(0, 3, n).astype("int32"),
    }
    return x, y, rng.random(n).astype("float32")


@pytest.mark.parametrize(("batch", "count"), [(7, 2), (8, 2), (5, 3), (2, 4)])
def test_shares_put_back_together_are_the_global_batches(batch, count):
    x, y, w = _data()
    whole = ArrayBatches(x, y, w, batch_size=batch, seed=4)
    shares = [ProcessShare(whole, k, count) for k in range(count)]
    whole.set_epoch(3)
    for i in range(len(whole)):
        gx, gy, gw = whole[i]
        parts = [s[i] for s in shares]
        # Equal shapes in every process, as a global array needs.
        assert len({len(p[0]["v"]) for p in parts}) == 1
        rows = len(gx["v"])
        joined = [
            np.concatenate([p[j][k] for p in parts])
            for j, k in ((0, "v"), (1, "up"), (1, "kind"))
        ]
        weights = np.concatenate([p[2] for p in parts])
        np.testing.assert_array_equal(joined[0][:rows], gx["v"])
        np.testing.assert_array_equal(joined[1][:rows], gy["up"])
        np.testing.assert_array_equal(joined[2][:rows], gy["kind"])
        np.testing.assert_array_equal(weights[:rows], gw)
        # Padding: a real row's inputs, every label missing, weight 0.
        assert len(joined[0]) - rows < count
        assert np.isnan(joined[1][rows:]).all() and (joined[2][rows:] == -1).all()
        assert (weights[rows:] == 0).all()
        assert all(r in gx["v"] for r in joined[0][rows:])


def _joined(whole, count: int, epoch: int) -> None:
    """Every batch of `whole` is its shares' real rows, in order."""
    shares = [ProcessShare(whole, k, count) for k in range(count)]
    for share in shares:
        share.set_epoch(epoch)
    for i in range(len(whole)):
        gx, gy = whole[i][:2]
        parts = [s[i] for s in shares]
        rows = len(next(iter(gx.values())))
        for name, value in gx.items():
            shapes = {p[0][name].shape for p in parts}
            assert len(shapes) == 1, shapes  # the same width in every process
            got = np.concatenate([p[0][name] for p in parts])
            np.testing.assert_array_equal(got[:rows], value)
        for name, value in gy.items():
            got = np.concatenate([p[1][name] for p in parts])
            np.testing.assert_array_equal(got[:rows], value)


def test_shares_of_mixed_sources_and_length_buckets():
    rng = np.random.default_rng(1)
    tasks = [keras_mtl.Task("up"), keras_mtl.Task("kind", "multiclass", num_classes=3)]
    sources = [
        Source("a", {"v": rng.normal(size=(9, 2))}, {"up": rng.random(9).round()}),
        Source("b", {"v": rng.normal(size=(6, 2))}, {"kind": rng.integers(0, 3, 6)}),
    ]
    _joined(MixedBatches(sources, tasks, batch_size=5, steps=4, seed=2), 2, 1)
    ids = np.zeros((40, 96), "int32")
    for row, length in enumerate(rng.integers(1, 96, 40)):
        ids[row, :length] = rng.integers(1, 256, length)
    buckets = BucketedBatches(
        {"t": ids}, {"up": rng.random(40).round()}, batch_size=6, buckets=[32, 96]
    )
    _joined(buckets, 3, 2)


def test_split_blocks_cover_the_split_once():
    x, y, _ = _data(11)
    blocks = [split_share(x, y, k, 4) for k in range(4)]
    got = np.concatenate([b[0]["v"] for b in blocks])
    np.testing.assert_array_equal(got[:11], x["v"])
    assert len(got) == 12 and np.isnan(blocks[3][1]["up"][-1])
    assert process_rows(3, 3, 4)[1].tolist() == [False]


def test_an_index_outside_the_processes_is_refused():
    with pytest.raises(ValueError, match="process index 2 is outside 0..1"):
        ProcessShare(ArrayBatches({"v": np.zeros((4, 1))}), 2, 2)
