"""Hashed n-gram ids and the bag-of-n-grams encoder: the in-graph hash equals
its plain-Python definition on every backend, and the encoder learns."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
from layer_checks import as_numpy, check_layer

from keras_mtl import Task, build_model, encode_bytes
from keras_mtl.encoders import NgramEncoder
from keras_mtl.layers import HashedNgrams
from keras_mtl.layers.hashed_ngrams import BASE, PRIME

pytestmark = pytest.mark.model

TEXTS = [
    "Hello World! @user #Tag don't",
    "ünïcødé 😀 x",
    "a",
    "",
    "  lots   of  spaces...",
    "x" * 40 + " yy",
]


def _poly(data: bytes) -> int:
    h = 0
    for c in data:
        h = (h * BASE + c + 1) % PRIME
    return h


def _id(h: int, kind: int, buckets: int) -> int:
    return 1 + ((h * BASE + kind) % PRIME) % buckets


def reference(text: str, length: int, buckets: int, low: int, high: int):
    """The module docstring's hash, written from the text with a regex."""
    raw = bytes(c + 32 if 65 <= c <= 90 else c for c in text.encode()[:length])
    chars = sorted(
        _id(_poly(raw[i : i + n]), n, buckets)
        for n in range(low, high + 1)
        for i in range(len(raw) - n + 1)
    )
    words = [w[-24:] for w in re.findall(rb"[0-9a-z\x80-\xff]+", raw)]
    hashes = [_poly(w) for w in words]
    unigrams = [_id(h, 1, buckets) for h in hashes]
    bigrams = [
        _id((a * BASE + b) % PRIME, 2, buckets)
        for a, b in zip(hashes, hashes[1:], strict=False)
    ]
    return chars, unigrams, bigrams


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_ids_equal_the_plain_python_hash(padding):
    length, buckets = 32, 5000
    layer = HashedNgrams(buckets=buckets, char_ngrams=(3, 5), word_ngrams=2)
    ids = as_numpy(layer(encode_bytes(TEXTS, length, padding=padding).ids))
    assert ids.shape == (len(TEXTS), layer.slots(length)) == (len(TEXTS), 3 * 32 + 63)
    assert ids.min() >= 0 and ids.max() <= buckets
    for text, row in zip(TEXTS, ids, strict=True):
        chars, unigrams, bigrams = reference(text, length, buckets, 3, 5)
        assert sorted(row[: 3 * length][row[: 3 * length] > 0]) == chars
        words = row[3 * length : 4 * length]
        assert list(words[words > 0]) == unigrams
        # Words are packed to the front, in text order.
        assert (words[: len(unigrams)] > 0).all()
        pairs = row[4 * length :]
        assert list(pairs[pairs > 0]) == bigrams


def test_hash_ignores_case_padding_width_and_punctuation_between_words():
    layer = HashedNgrams(buckets=1000, char_ngrams=None, word_ngrams=2)
    a = as_numpy(layer(encode_bytes(["Good day"], 12).ids))[0]
    b = as_numpy(layer(encode_bytes(["good... DAY!"], 40, padding="post").ids))[0]
    c = as_numpy(layer(encode_bytes(["day good"], 12).ids))[0]
    assert sorted(a[a > 0]) == sorted(b[b > 0])
    # Same words, other order: same unigrams, another bigram.
    assert sorted(a[:12][a[:12] > 0]) == sorted(c[:12][c[:12] > 0])
    assert set(a[12:][a[12:] > 0]) != set(c[12:][c[12:] > 0])


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"char_ngrams must be \(min_n, max_n\)"):
        HashedNgrams(char_ngrams=(4, 2))
    with pytest.raises(ValueError, match="no n-grams to hash"):
        HashedNgrams(char_ngrams=None, word_ngrams=0)
    with pytest.raises(ValueError, match="tokens='words' needs the vocabulary"):
        NgramEncoder(tokens="words")
    with pytest.raises(ValueError, match="dropout must be in"):
        NgramEncoder(dropout=1.5)
    with pytest.raises(ValueError, match="ngram_dropout must be in"):
        NgramEncoder(ngram_dropout=1.0)
    with pytest.raises(ValueError, match="pooling must be 'families' or 'mean'"):
        NgramEncoder(pooling="max")


@pytest.mark.parametrize("pooling", ["mean", "families"])
def test_encoding_is_the_mean_of_its_ngram_embeddings(pooling):
    encoder = NgramEncoder(dim=4, buckets=97, char_ngrams=(2, 3), pooling=pooling)
    length = 16
    x = encode_bytes(["Nice one", "", "ok"], length).ids
    out = as_numpy(encoder(x))
    ids = as_numpy(encoder.ngram_ids(x))
    table = as_numpy(encoder.embedding.embeddings)
    # Slots: character 2- and 3-grams, then words, then word bigrams.
    families = [(0, 2 * length), (2 * length, 3 * length), (3 * length, None)]
    spans = [(0, None)] if pooling == "mean" else families
    for row, encoding in zip(ids, out, strict=True):
        expected = np.zeros(4)
        for start, stop in spans:
            used = row[start:stop][row[start:stop] > 0]
            if len(used):
                expected += table[used].mean(axis=0)
        np.testing.assert_allclose(encoding, expected, rtol=1e-5, atol=1e-7)


def test_ngram_dropout_averages_a_random_subset_while_training():
    """Training: each encoding is the mean of the embeddings of a subset of
    the text's n-grams (never a rescaled one), a new subset each call, about
    `1 - rate` of them kept; inference: the mean over all of them."""
    keras.utils.set_random_seed(3)
    # Buckets enough that most ids occur once: k below is then unique.
    buckets = 1021
    encoder = NgramEncoder(
        dim=buckets + 1, buckets=buckets, dropout=0.0, ngram_dropout=0.5
    )
    x = encode_bytes(["the cat sat on the mat", "so very happy today"], 32).ids
    encoder.build(x.shape)
    # One-hot rows: an encoding is then the histogram of the ids it averaged.
    encoder.embedding.embeddings.assign(np.eye(buckets + 1, dtype="float32"))
    ids = as_numpy(encoder.ngram_ids(x))
    full_counts = [np.bincount(r[r > 0], minlength=buckets + 1) for r in ids]
    full = as_numpy(encoder(x, training=False))
    for counts, encoding in zip(full_counts, full, strict=True):
        np.testing.assert_allclose(encoding, counts / counts.sum(), atol=1e-6)
    draws = [as_numpy(encoder(x, training=True)) for _ in range(3)]
    assert not np.allclose(draws[0], draws[1])
    kept, total = 0, 0
    for draw in draws:
        for counts, encoding in zip(full_counts, draw, strict=True):
            # Some number k of kept n-grams makes k * encoding whole counts
            # that never exceed the text's own.
            ks = [
                k
                for k in range(1, counts.sum() + 1)
                if np.allclose(encoding * k, np.round(encoding * k), atol=1e-4)
                and (np.round(encoding * k) <= counts).all()
                and np.isclose(encoding.sum(), 1.0, atol=1e-5)
            ]
            assert ks, "the encoding is not the mean of a subset of the n-grams"
            kept += ks[0]
            total += counts.sum()
    assert 0.35 < kept / total < 0.65


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"char_ngrams": None, "word_ngrams": 1},
        {"dropout": 0.2},
        {"ngram_dropout": 0.3},
    ],
)
def test_layer_round_trip_and_training_step(kwargs, tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 256, (16, 12)).astype("uint8")
    # The training-step check wants a loss that falls on 16 rows: the
    # default dropout (0.5) on 6 numbers is tested in its own case (0.2).
    encoder = NgramEncoder(dim=6, buckets=256, **{"dropout": 0.0, **kwargs})
    check_layer(encoder, ids, (16, 6), tmp_path)


def test_word_ids_variant(tmp_path):
    words = np.array([[0, 0, 5, 7, 2], [0, 3, 4, 5, 7]], "int32")
    encoder = NgramEncoder(
        dim=5, buckets=64, tokens="words", vocab_size=10, dropout=0.0
    )
    ids = as_numpy(encoder.ngram_ids(words))
    assert list(ids[0][:5]) == [0, 0, 5, 7, 2]
    # "5 7" is a bigram in both rows: same id, in the rows after the vocabulary.
    pairs0, pairs1 = ids[0][5:], ids[1][5:]
    assert pairs0[2] == pairs1[3] >= 10
    assert (pairs0[:2] == 0).all() and (pairs0[2:] > 0).all()
    check_layer(encoder, np.tile(words, (8, 1)), (16, 5), tmp_path)


def test_any_length_for_bucketed_batches():
    encoder = NgramEncoder(dim=3, buckets=128)
    inputs = keras.Input((None,), dtype="uint8")
    model = keras.Model(inputs, encoder(inputs))
    short = model.predict(encode_bytes(["so good"], 10).ids, verbose=0)
    long = model.predict(encode_bytes(["so good"], 60).ids, verbose=0)
    np.testing.assert_allclose(short, long, rtol=1e-6)


def test_a_multi_task_model_learns_words_and_saves(tmp_path):
    """Two tweets, a task on a's words and a task on whether a and b share
    the keyword: the encoder learns both and the model reloads exactly."""
    rng = np.random.default_rng(1)
    words = ["happy", "sad", "angry", "calm"]
    filler = ["the", "a", "today", "it", "was", "so", "really"]

    def tweet(word):
        parts = list(rng.choice(filler, 4)) + [word]
        rng.shuffle(parts)
        return " ".join(parts)

    n = 320
    ka, kb = rng.integers(0, 4, n), rng.integers(0, 4, n)
    x = {
        "a": encode_bytes([tweet(words[k]) for k in ka], 48).ids,
        "b": encode_bytes([tweet(words[k]) for k in kb], 48).ids,
    }
    y = {"a_word": ka.astype("int32"), "same": (ka == kb).astype("float32")}
    keras.utils.set_random_seed(0)
    model = build_model(
        {k: keras.Input((48,), dtype="uint8", name=k) for k in x},
        NgramEncoder(dim=16, buckets=1024, char_ngrams=None),
        [
            Task("a_word", "multiclass", 4, inputs=["a"]),
            Task("same", hidden=[16]),
        ],
        fusion="pair",
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    model.fit(x, y, epochs=30, batch_size=160, verbose=0)
    p = model.predict_tasks(x)
    assert (p["a_word"].argmax(-1) == ka).mean() == 1.0
    assert ((p["same"][:, 0] > 0.5) == (ka == kb)).mean() > 0.95
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path).predict_tasks(x)
    np.testing.assert_allclose(again["same"], p["same"], rtol=1e-5, atol=1e-6)
