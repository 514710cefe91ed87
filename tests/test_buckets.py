"""Length-bucketed batches: every sample once, padding only cut, few shapes,
the same numbers as padded batches, and exact resume."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from layer_checks import as_numpy, assert_resumes_exactly

from keras_mtl.callbacks import Checkpoint
from keras_mtl.config import Config, ConfigError
from keras_mtl.data import ArrayBatches, BucketedBatches, PackedTexts, text_lengths
from keras_mtl.data.text import encode_bytes
from keras_mtl.models.presets import seed_case1


def _texts(rng, n, words_at_most=15):
    words = ["good", "bad", "day", "rain", "sun", "love", "hate", "ok"]
    return [
        " ".join(rng.choice(words, size=rng.integers(1, words_at_most + 1)))
        for _ in range(n)
    ]


def _pairs(rng, n=150, length=120, words_at_most=15):
    a, b = (encode_bytes(_texts(rng, n, words_at_most), length) for _ in "ab")
    x = {"tweet_a": a.ids, "tweet_b": b.ids}
    y = {
        "a_negative": rng.integers(0, 2, n).astype("float32"),
        "same_sentiment": rng.integers(0, 2, n).astype("float32"),
    }
    return x, y, np.maximum(a.lengths, b.lengths)


def test_text_lengths_match_the_encoder(rng):
    encoded = encode_bytes(_texts(rng, 40) + [""], 120)
    np.testing.assert_array_equal(
        text_lengths(encoded.ids), np.minimum(encoded.lengths, 120)
    )


def _pairs_lengths(x):
    return {n: text_lengths(a) for n, a in x.items()}


@pytest.mark.parametrize("per_input", [True, False])
def test_every_sample_once_and_only_padding_cut(rng, per_input):
    x, y, longest = _pairs(rng)
    lengths = _pairs_lengths(x)
    data = BucketedBatches(
        x, y, batch_size=16, buckets=[32, 64, 96], per_input=per_input, seed=4
    )
    for epoch in (0, 1):
        data.set_epoch(epoch)
        seen, partial = [], 0
        for i in range(len(data)):
            bx, by = data[i]
            widths, rows = data.batches()[i]
            for name, width in zip(("tweet_a", "tweet_b"), widths, strict=True):
                assert bx[name].shape == (len(rows), width)
                assert lengths[name][rows].max() <= width  # no text is cut
                # What was dropped is padding.
                assert not x[name][rows, : 120 - width].any()
                np.testing.assert_array_equal(bx[name], x[name][rows, 120 - width :])
            if not per_input:
                assert widths[0] == widths[1]
            np.testing.assert_array_equal(by["a_negative"], y["a_negative"][rows])
            partial += len(rows) < 16
            seen.extend(rows.tolist())
        assert sorted(seen) == list(range(150))
        assert partial == 1  # 150 = 9 x 16 + 6: one batch of 6, in the widest bucket
    widths = {w for s in data.shapes() for w in s[1:]}
    assert widths <= {32, 64, 96, 120}
    # At most buckets^2 groups + the joint widths + one partial batch.
    assert len(data.shapes()) <= (16 + 4 + 1 if per_input else 4 + 1)
    # Most of the padding goes: texts here are far shorter than 120 bytes.
    assert data.padding_saved() > 0.3


def test_per_input_widths_skip_more_padding(rng):
    x, y, _ = _pairs(rng, n=600)
    joint = BucketedBatches(x, y, batch_size=16, buckets=[32, 64, 96], per_input=False)
    apart = BucketedBatches(x, y, batch_size=16, buckets=[32, 64, 96])
    assert apart.padding_saved() > joint.padding_saved()


def test_order_depends_on_seed_and_epoch_only(rng):
    x, y, _ = _pairs(rng)

    def order(seed, epoch):
        data = BucketedBatches(x, y, batch_size=16, seed=seed, buckets=[32, 64])
        data.set_epoch(epoch)
        return [(w, rows.tolist()) for w, rows in data.batches()]

    assert order(1, 2) == order(1, 2)
    assert order(1, 2) != order(1, 3)
    assert order(1, 2) != order(2, 2)


def test_bad_arguments(rng):
    x, y, _ = _pairs(rng, n=8)
    with pytest.raises(ValueError, match=r"buckets must increase and be >= 1"):
        BucketedBatches(x, y, buckets=[64, 32])
    with pytest.raises(ValueError, match="no text input to bucket"):
        BucketedBatches({"v": np.zeros((8, 3), "float32")}, y)
    with pytest.raises(ValueError, match=r"need one length, got \[100, 120\]"):
        BucketedBatches({**x, "tweet_b": x["tweet_b"][:, :100]}, y)


def test_packed_texts_read_as_the_padded_ids(rng):
    texts = _texts(rng, 300) + ["", "x" * 120, "y" * 150]  # empty, full, cut
    ids = encode_bytes(texts, 120).ids
    packed = PackedTexts.from_ids(ids)
    assert packed.shape == ids.shape and len(packed) == len(ids)
    np.testing.assert_array_equal(packed.lengths(), text_lengths(ids))
    np.testing.assert_array_equal(np.asarray(packed), ids)
    assert packed.nbytes < ids.nbytes / 2  # the texts only, plus offsets
    rows = rng.integers(0, len(ids), 50)
    np.testing.assert_array_equal(packed[rows], ids[rows])
    np.testing.assert_array_equal(packed[7], ids[7])
    for width in (1, 30, 64, 120):
        np.testing.assert_array_equal(packed.take(rows, width), ids[rows, -width:])
    again = packed.select(rows)  # repeats allowed
    np.testing.assert_array_equal(np.asarray(again), ids[rows])
    assert again.flat.nbytes == int(text_lengths(ids)[rows].sum())
    with pytest.raises(ValueError, match="width 3 must hold the longest text"):
        PackedTexts(packed.flat, packed.offsets, 3)
    with pytest.raises(ValueError, match="offsets must increase"):
        swapped = packed.offsets.copy()
        swapped[[5, 6]] = swapped[[6, 5]]
        PackedTexts(packed.flat, swapped, 120)


def test_packed_texts_give_the_same_batches(rng):
    x, y, _ = _pairs(rng, n=200)
    packed = {k: PackedTexts.from_ids(v) for k, v in x.items()}
    for kind in (BucketedBatches, ArrayBatches):
        arrays = kind(x, y, batch_size=16, seed=4)
        texts = kind(packed, y, batch_size=16, seed=4)
        arrays.set_epoch(3), texts.set_epoch(3)
        assert len(arrays) == len(texts)
        for i in range(len(arrays)):
            a, b = arrays[i], texts[i]
            for k in x:
                np.testing.assert_array_equal(a[0][k], b[0][k], err_msg=f"{i} {k}")
            np.testing.assert_array_equal(a[1]["a_negative"], b[1]["a_negative"])


def test_tweet_pairs_packed_are_the_padded_pairs():
    from keras_mtl.datasets import tweet_pairs

    kwargs = {"seed": 2, "train_pairs": 400, "val_pairs": 50, "test_pairs": 50}
    padded = tweet_pairs.load(**kwargs)
    packed = tweet_pairs.load(packed=True, **kwargs)
    for split in ("train", "val", "test"):
        for k, ids in getattr(padded, split).x.items():
            texts = getattr(packed, split).x[k]
            assert isinstance(texts, PackedTexts)
            np.testing.assert_array_equal(np.asarray(texts), ids)
        for k, labels in getattr(padded, split).y.items():
            np.testing.assert_array_equal(getattr(packed, split).y[k], labels)


@pytest.mark.model
def test_bucketed_batches_give_the_padded_numbers(rng):
    """With skip_padding, a bucketed batch's losses and gradients are those
    of the same samples padded to full length: bucketing saves work only."""
    x, y, _ = _pairs(rng, n=32, words_at_most=8)  # all in the 64 bucket
    keras.utils.set_random_seed(1)
    model = seed_case1(byte_ids=True, length=None, skip_padding=True, units=8)
    model.compile(optimizer=keras.optimizers.SGD(0.1), balancer="upgrad")
    data = BucketedBatches(x, y, batch_size=32, buckets=[64])
    (bx, by), (_, rows) = data[0], data.batches()[0]  # one batch: all 32
    assert bx["tweet_a"].shape[1] < 120
    full = {k: v[rows] for k, v in x.items()}
    np.testing.assert_allclose(
        as_numpy(model.predict_tasks(bx, verbose=0)["a_negative"]),
        as_numpy(model.predict_tasks(full, verbose=0)["a_negative"]),
        atol=1e-6,
    )
    start = model.get_weights()
    model.train_on_batch(bx, by)
    cut = model.get_weights()
    model.set_weights(start)
    model.train_on_batch(full, {k: v[rows] for k, v in y.items()})
    for a, b in zip(cut, model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=2e-6)


@pytest.mark.model
def test_bucketed_training_resumes_exactly(rng, tmp_path):
    x, y, _ = _pairs(rng, n=96)

    def run(folder, extra):
        keras.utils.set_random_seed(3)
        model = seed_case1(byte_ids=True, length=None, skip_padding=True, units=6)
        model.compile(optimizer="adam")
        data = BucketedBatches(x, y, batch_size=8, buckets=[64], seed=5)
        callbacks = [Checkpoint(folder, every=3), *extra]
        return model, model.fit(data, epochs=2, verbose=0, callbacks=callbacks)

    assert_resumes_exactly(run, tmp_path, stop_at=4)


@pytest.mark.model
def test_config_buckets_train_and_save(tmp_path):
    from keras_mtl import data as data_module
    from keras_mtl.runs.runner import train_once

    table = {
        "inputs": {"text": {"shape": [60], "encoding": "bytes", "column": "text"}},
        "encoder": {
            "name": "lstm",
            "units": 4,
            "symbols": "onehot",
            "skip_padding": True,
        },
        "tasks": [{"name": "pos"}],
        "training": {"epochs": 1, "batch_size": 8, "buckets": [16, 32]},
        "data": {"source": "files", "train": str(tmp_path / "train.csv")},
    }
    rng = np.random.default_rng(0)
    texts = _texts(rng, 40)
    rows = "\n".join(f'"{t[:55]}",{int("good" in t)}' for t in texts)
    (tmp_path / "train.csv").write_text("text,pos\n" + rows + "\n")
    config = Config(table, "<test>")
    assert config.inputs()["text"].shape == (None, None)
    data = data_module.load(config)
    result = train_once(config, data, seed=0)
    model = result["model"]
    assert np.isfinite(result["history"]["loss"]).all()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        loaded.predict(data.train.x, verbose=0)["pos"],
        model.predict(data.train.x, verbose=0)["pos"],
        atol=1e-6,
    )
    for bad, message in (
        ([32, 16], "must be increasing positive widths"),
        ([], "must be increasing positive widths"),
    ):
        with pytest.raises(ConfigError, match=message):
            Config({**table, "training": {"buckets": bad}}, "<test>")
    streamed = Config({**table, "data": {**table["data"], "stream": True}}, "<test>")
    with pytest.raises(ConfigError, match="in memory as one table .*, not a stream"):
        train_once(streamed, data_module.load(streamed), seed=0)
    numbers = {**table, "inputs": {"text": {"shape": [3], "encoding": "numbers"}}}
    with pytest.raises(ConfigError, match='no input has encoding = "bytes"'):
        Config(numbers, "<test>")
