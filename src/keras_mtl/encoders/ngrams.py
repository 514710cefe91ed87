"""A bag of hashed n-gram embeddings: the fastText text encoder."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_mtl.encoders.base import Tensor
from keras_mtl.layers.hashed_ngrams import BASE, BIGRAM, PRIME, HashedNgrams, mix


@keras.saving.register_keras_serializable(package="keras_mtl")
class NgramEncoder(keras.layers.Layer):
    """The mean of learned embeddings of a text's hashed word and character
    n-grams (fastText: Joulin et al. 2017, https://arxiv.org/abs/1607.01759;
    Bojanowski et al. 2017, https://arxiv.org/abs/1607.04606).

    Strong on a few thousand labelled texts and fast on a CPU: a step costs
    one embedding lookup and a mean, against hundreds of recurrent steps
    for a byte LSTM. The n-gram ids are computed in the graph
    (`keras_mtl.layers.HashedNgrams`) from byte ids, the library's text
    input (`keras_mtl.encode_bytes`), so it is a drop-in for
    `LSTMEncoder(symbols="onehot")` on the seed's tweets, with any length
    (bucketed batches too).

    With `tokens="words"` the input is instead word ids from a
    `keras_mtl.data.WordVocabulary` (0 = padding): each id is a word, and
    consecutive ids give hashed word bigrams (`word_ngrams=2`).

    Args:
        dim: Width of the embeddings and of the encoding.
        buckets: Hash buckets (rows of the embedding table, besides id 0).
        char_ngrams: `(min_n, max_n)` of byte n-grams, or None (byte input).
        word_ngrams: 1: words; 2: words and word bigrams; 0: no words.
        tokens: `"bytes"` (default) or `"words"` (word ids as input).
        vocab_size: With `tokens="words"`, the vocabulary's size (its ids
            take the first rows of the table, bigrams the `buckets` after).
        dropout: Dropout on the encoding while training (default 0.5: on
            a few thousand texts the n-gram table over-fits within an epoch
            without it; docs/benchmarks.md has the measurements).
        ngram_dropout: While training, each n-gram of a text is left out of
            its mean with this probability, a new draw every step (the word
            dropout of Iyyer et al. 2015, "Deep Unordered Composition Rivals
            Syntactic Methods", https://aclanthology.org/P15-1162): the
            model cannot lean on one rare n-gram it has memorised.
        lowercase: Lower-case ASCII letters before hashing (byte input).
        learning_rate_scale: The table is stored divided by this and the
            encoding multiplied by it, so an optimizer whose steps do not
            depend on the gradient's scale (Adam, RMSprop) moves the
            embeddings this many times slower than the heads: a rare
            n-gram seen once cannot jump far and be memorised.
        pooling: `"mean"` (default): one mean over all n-grams, as
            fastText; `"families"`: the sum of the mean embedding of each
            n-gram family (character n-grams, words, word bigrams), so a
            text's few words weigh as much as its many character n-grams.

    Example:
    >>> import numpy as np
    >>> from keras_mtl.data.text import encode_bytes
    >>> encoder = NgramEncoder(dim=8, buckets=512)
    >>> encoder(encode_bytes(["so happy", "meh"]).ids).shape
    (2, 8)
    """

    def __init__(
        self,
        dim: int = 64,
        buckets: int = 2**17,
        char_ngrams: tuple[int, int] | list[int] | None = (3, 5),
        word_ngrams: int = 2,
        tokens: str = "bytes",
        vocab_size: int | None = None,
        dropout: float = 0.5,
        ngram_dropout: float = 0.0,
        lowercase: bool = True,
        pooling: str = "mean",
        learning_rate_scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if tokens not in ("bytes", "words"):
            raise ValueError(
                f"Encoder '{self.name}': tokens must be 'bytes' or 'words', "
                f"got {tokens!r}."
            )
        if tokens == "words" and (vocab_size is None or int(vocab_size) < 2):
            raise ValueError(
                f"Encoder '{self.name}': tokens='words' needs the vocabulary's "
                f"vocab_size (>= 2), got {vocab_size!r}."
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(
                f"Encoder '{self.name}': dropout must be in [0, 1), got {dropout}."
            )
        if not 0.0 <= float(ngram_dropout) < 1.0:
            raise ValueError(
                f"Encoder '{self.name}': ngram_dropout must be in [0, 1), got "
                f"{ngram_dropout}."
            )
        if pooling not in ("families", "mean"):
            raise ValueError(
                f"Encoder '{self.name}': pooling must be 'families' or 'mean', "
                f"got {pooling!r}."
            )
        self.pooling = pooling
        if not 0.0 < float(learning_rate_scale) <= 1.0:
            raise ValueError(
                f"Encoder '{self.name}': learning_rate_scale must be in (0, 1], "
                f"got {learning_rate_scale}."
            )
        self.learning_rate_scale = float(learning_rate_scale)
        if int(dim) < 1:
            raise ValueError(f"Encoder '{self.name}': dim must be >= 1, got {dim}.")
        self.dim = int(dim)
        self.buckets = int(buckets)
        self.word_ngrams = int(word_ngrams)
        self.tokens = tokens
        self.vocab_size = None if vocab_size is None else int(vocab_size)
        self.dropout = float(dropout)
        self.lowercase = bool(lowercase)
        if tokens == "bytes":
            self.char_ngrams = (
                None if char_ngrams is None else tuple(int(n) for n in char_ngrams)
            )
            self.hasher = HashedNgrams(
                buckets=self.buckets,
                char_ngrams=self.char_ngrams,
                word_ngrams=self.word_ngrams,
                lowercase=self.lowercase,
                name="ngram_ids",
            )
            rows = self.buckets + 1
        else:
            if self.word_ngrams not in (1, 2):
                raise ValueError(
                    f"Encoder '{self.name}': with tokens='words', word_ngrams must "
                    f"be 1 or 2, got {word_ngrams!r}."
                )
            self.char_ngrams = None
            self.hasher = None
            rows = self.vocab_size + (self.buckets if self.word_ngrams == 2 else 0)
        self.embedding = keras.layers.Embedding(
            rows,
            self.dim,
            embeddings_initializer=keras.initializers.RandomUniform(
                -1.0 / (self.dim * self.learning_rate_scale),
                1.0 / (self.dim * self.learning_rate_scale),
            ),
            name="ngram_embedding",
        )
        self.drop = keras.layers.Dropout(self.dropout) if self.dropout else None
        self.ngram_dropout = float(ngram_dropout)
        # Dropout on the presence mask: its 1/(1-rate) scale cancels in the
        # mean, which then runs over the n-grams kept.
        self.ngram_drop = (
            keras.layers.Dropout(self.ngram_dropout, name="ngram_dropout")
            if self.ngram_dropout
            else None
        )

    def build(self, input_shape: tuple) -> None:
        if self.hasher is not None:
            self.hasher.build(tuple(input_shape))
        self.embedding.build((None, None))

    def ngram_ids(self, inputs: Tensor) -> Tensor:
        """The ids the encoding averages over (0: empty slot)."""
        if self.hasher is not None:
            return self.hasher(inputs)
        words = ops.cast(inputs, "int32")
        if self.word_ngrams == 1:
            return words
        first, second = words[:, :-1], words[:, 1:]
        both = ops.logical_and(first > 0, second > 0)
        pair = ops.mod(ops.mod(first, PRIME) * BASE + ops.mod(second, PRIME), PRIME)
        bigrams = self.vocab_size - 1 + mix(pair, BIGRAM, self.buckets)
        return ops.concatenate([words, ops.where(both, bigrams, 0)], axis=1)

    def _families(self, length: Any) -> list[tuple[Any, Any]]:
        """(start, stop) of each n-gram family's slots among the ids:
        character n-grams, words, word bigrams."""
        bounds = []
        start = 0
        if self.char_ngrams is not None:
            stop = (self.char_ngrams[1] - self.char_ngrams[0] + 1) * length
            bounds.append((start, stop))
            start = stop
        if self.word_ngrams >= 1:
            bounds.append((start, start + length))
            start = start + length
        if self.word_ngrams == 2:
            bounds.append((start, None))
        return bounds

    def bag(
        self, inputs: Tensor, training: bool | None = None
    ) -> tuple[Tensor, Tensor]:
        """(ids, weights), each (batch, slots): the encoding before scaling
        and dropout is the sum over slots of weight x the table's row at the
        id (1 / the n-gram family's count of present ids, 0 where empty)."""
        ids = self.ngram_ids(inputs)
        present = ops.cast(ids > 0, self.compute_dtype)
        if self.ngram_drop is not None:
            present = self.ngram_drop(present, training=training)
        if self.pooling == "mean":
            spans = [(0, None)]
        else:
            spans = self._families(ops.shape(inputs)[1])
        weights = []
        for start, stop in spans:
            part = present[:, start:stop]
            count = ops.maximum(ops.sum(part, axis=1, keepdims=True), 1.0)
            weights.append(part / count)
        weights = weights[0] if len(weights) == 1 else ops.concatenate(weights, axis=1)
        return ids, weights

    def finish(self, pooled: Tensor, training: bool | None = None) -> Tensor:
        """The encoding from the weighted sum of the bag's rows."""
        if self.learning_rate_scale != 1.0:
            pooled = pooled * self.learning_rate_scale
        if self.drop is not None:
            pooled = self.drop(pooled, training=training)
        return pooled

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        ids, weights = self.bag(inputs, training=training)
        vectors = self.embedding(ids)
        pooled = ops.sum(vectors * ops.expand_dims(weights, -1), axis=1)
        return self.finish(pooled, training=training)

    def inside_rule(self) -> Any:
        """The rule of its weights' per-task gradients inside autodiff
        (`keras_mtl.models.rules.EmbeddingBag`)."""
        from keras_mtl.models.rules import EmbeddingBag

        return EmbeddingBag(self) if EmbeddingBag.applies(self) else None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.dim)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "dim": self.dim,
            "buckets": self.buckets,
            "char_ngrams": list(self.char_ngrams) if self.char_ngrams else None,
            "word_ngrams": self.word_ngrams,
            "tokens": self.tokens,
            "vocab_size": self.vocab_size,
            "dropout": self.dropout,
            "ngram_dropout": self.ngram_dropout,
            "lowercase": self.lowercase,
            "pooling": self.pooling,
            "learning_rate_scale": self.learning_rate_scale,
        }
