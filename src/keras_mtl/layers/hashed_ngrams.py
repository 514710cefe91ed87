"""Hashed word and character n-gram ids, computed in the graph from byte ids.

The ids of fastText's bag of n-grams (Joulin et al. 2017, "Bag of Tricks for
Efficient Text Classification", https://arxiv.org/abs/1607.01759; Bojanowski
et al. 2017, "Enriching Word Vectors with Subword Information",
https://arxiv.org/abs/1607.04606), made from the byte ids the library
already stores (`keras_mtl.encode_bytes`), with `keras.ops` only: so the
seed's inputs, bucketing and every backend keep working, and nothing but 280
bytes per text is kept on the host.

The hash, exactly (a test recomputes it in plain Python from the text):

* bytes are lower-cased (A-Z -> a-z) when `lowercase`; byte 0 is padding;
* a *word* is a maximal run of word bytes (0-9, a-z, A-Z and every byte
  >= 128, so UTF-8 letters and emoji count); its hash is the polynomial
  `h = sum_j (c_j + 1) * 263^(m-1-j) mod P` over its last `max_word_bytes`
  bytes (m of them), P = 4,194,301 (prime);
* a *word bigram* hashes two consecutive words: `(h1 * 263 + h2) mod P`;
* a *character n-gram* is any n consecutive non-padding bytes (spaces and
  punctuation included, so it sees across word boundaries), hashed with the
  same polynomial;
* each hash `h` of kind `t` (1 word, 2 word bigram, n for a character
  n-gram) becomes the id `1 + ((h * 263 + t) mod P) mod buckets`; 0 means
  "no n-gram here" (padding, or a slot past the text's last word).

Every intermediate value stays below 2^31, so int32 arithmetic is exact on
every backend.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

Tensor = Any

#: The hash's modulus (a prime) and multiplier; products stay below 2^31.
PRIME = 4_194_301
BASE = 263
WORD, BIGRAM = 1, 2


def mix(h: Tensor, kind: int, buckets: int) -> Tensor:
    """The id (1..buckets) of hash `h` of n-gram kind `kind`."""
    return 1 + ops.mod(ops.mod(h * BASE + kind, PRIME), buckets)


def _shift(x: Tensor, k: int) -> Tensor:
    """`x` moved k places to the right (k > 0) or left (k < 0) along axis 1,
    filled with zeros: out[:, i] = x[:, i - k]."""
    if k == 0:
        return x
    if k > 0:
        return ops.pad(x, [[0, 0], [k, 0]])[:, : ops.shape(x)[1]]
    return ops.pad(x, [[0, 0], [0, -k]])[:, -k:]


@keras.saving.register_keras_serializable(package="keras_mtl")
class HashedNgrams(keras.layers.Layer):
    """Maps byte ids (batch, length) to hashed n-gram ids (batch, n_ids).

    The output holds, in this order, the character n-gram ids for each n in
    `char_ngrams` (one slot per byte position each), the word ids (one slot
    per position, words packed to the front), and the word bigram ids when
    `word_ngrams >= 2`. Ids are in 1..buckets; 0 marks an empty slot. See the
    module docstring for the hash.

    Args:
        buckets: Number of hash buckets (ids 1..buckets).
        char_ngrams: `(min_n, max_n)` of the character n-grams, or None for
            none.
        word_ngrams: 1 for words only, 2 for words and word bigrams, 0 for
            no word n-grams.
        lowercase: Lower-case ASCII letters first.
        max_word_bytes: A longer word is hashed by its last this many bytes.

    Example:
    >>> import numpy as np
    >>> from keras_mtl.data.text import encode_bytes
    >>> layer = HashedNgrams(buckets=1000, char_ngrams=None, word_ngrams=2)
    >>> ids = np.asarray(layer(encode_bytes(["Hi you", "hi YOU!"], 8).ids))
    >>> ids.shape, (ids[0] == ids[1]).all(), int((ids[0] > 0).sum())
    ((2, 15), np.True_, 3)
    """

    def __init__(
        self,
        buckets: int = 2**18,
        char_ngrams: tuple[int, int] | list[int] | None = (3, 5),
        word_ngrams: int = 2,
        lowercase: bool = True,
        max_word_bytes: int = 24,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(buckets) < 1:
            raise ValueError(f"HashedNgrams: buckets must be >= 1, got {buckets}.")
        if char_ngrams is not None:
            if len(char_ngrams) != 2 or not 1 <= char_ngrams[0] <= char_ngrams[1]:
                raise ValueError(
                    "HashedNgrams: char_ngrams must be (min_n, max_n) with "
                    f"1 <= min_n <= max_n, or None; got {char_ngrams!r}."
                )
            char_ngrams = (int(char_ngrams[0]), int(char_ngrams[1]))
        if int(word_ngrams) not in (0, 1, 2):
            raise ValueError(
                f"HashedNgrams: word_ngrams must be 0, 1 or 2, got {word_ngrams!r}."
            )
        if char_ngrams is None and int(word_ngrams) == 0:
            raise ValueError(
                "HashedNgrams: with char_ngrams=None and word_ngrams=0 there are "
                "no n-grams to hash."
            )
        if int(max_word_bytes) < 1:
            raise ValueError(
                f"HashedNgrams: max_word_bytes must be >= 1, got {max_word_bytes}."
            )
        self.buckets = int(buckets)
        self.char_ngrams = char_ngrams
        self.word_ngrams = int(word_ngrams)
        self.lowercase = bool(lowercase)
        self.max_word_bytes = int(max_word_bytes)

    def slots(self, length: int | None) -> int | None:
        """The number of ids per text for texts of `length` bytes."""
        if length is None:
            return None
        n = 0
        if self.char_ngrams is not None:
            n += (self.char_ngrams[1] - self.char_ngrams[0] + 1) * length
        if self.word_ngrams >= 1:
            n += length
        if self.word_ngrams == 2:
            n += length - 1
        return n

    def call(self, ids: Tensor) -> Tensor:
        x = ops.cast(ids, "int32")
        if self.lowercase:
            upper = ops.logical_and(x >= 65, x <= 90)
            x = ops.where(upper, x + 32, x)
        parts = []
        if self.char_ngrams is not None:
            parts += self._char_ids(x)
        if self.word_ngrams >= 1:
            parts += self._word_ids(x)
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=1)

    def _char_ids(self, x: Tensor) -> list[Tensor]:
        low, high = self.char_ngrams
        out = []
        h = ops.zeros_like(x)
        alive = ops.ones_like(x, dtype="bool")
        for n in range(1, high + 1):
            # h[:, i] is the hash of the n bytes starting at i.
            nxt = _shift(x, -(n - 1))
            h = ops.mod(h * BASE + nxt + 1, PRIME)
            alive = ops.logical_and(alive, nxt > 0)
            if n >= low:
                out.append(ops.where(alive, mix(h, n, self.buckets), 0))
        return out

    def _word_ids(self, x: Tensor) -> list[Tensor]:
        is_word = ops.logical_or(
            ops.logical_or(
                ops.logical_and(x >= 48, x <= 57), ops.logical_and(x >= 97, x <= 122)
            ),
            x >= 128,
        )
        if not self.lowercase:
            is_word = ops.logical_or(is_word, ops.logical_and(x >= 65, x <= 90))
        # h[:, i]: hash of the word bytes ending at i (the last max_word_bytes).
        h = ops.zeros_like(x)
        alive = is_word
        weight = 1
        for k in range(self.max_word_bytes):
            if k:
                alive = ops.logical_and(alive, _shift(is_word, k))
            term = (_shift(x, k) + 1) * weight
            h = ops.mod(h + ops.where(alive, term, 0), PRIME)
            weight = weight * BASE % PRIME
        end = ops.logical_and(is_word, ops.logical_not(_shift(is_word, -1)))
        # Pack the words to the front, in text order: sort positions with
        # word ends first (every key is distinct, so the sort is exact).
        length = ops.shape(x)[1]
        position = ops.cumsum(ops.ones_like(x), axis=1) - 1
        order = ops.argsort(ops.where(end, position, position + length), axis=1)
        words = ops.take_along_axis(ops.where(end, h, -1), order, axis=1)
        present = words >= 0
        out = [ops.where(present, mix(words, WORD, self.buckets), 0)]
        if self.word_ngrams == 2:
            first, second = words[:, :-1], words[:, 1:]
            both = ops.logical_and(first >= 0, second >= 0)
            pair = ops.mod(first * BASE + second, PRIME)
            out.append(ops.where(both, mix(pair, BIGRAM, self.buckets), 0))
        return out

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.slots(input_shape[1]))

    def compute_output_spec(self, ids: Any) -> keras.KerasTensor:
        return keras.KerasTensor(self.compute_output_shape(ids.shape), dtype="int32")

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "buckets": self.buckets,
            "char_ngrams": list(self.char_ngrams) if self.char_ngrams else None,
            "word_ngrams": self.word_ngrams,
            "lowercase": self.lowercase,
            "max_word_bytes": self.max_word_bytes,
        }
