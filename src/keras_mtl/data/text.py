"""Byte-level text encoding on the host: 280 byte ids per text."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

#: The seed's length: a tweet has at most 280 characters.
TWEET_BYTES = 280


class EncodedText(NamedTuple):
    """Byte ids of a batch of texts, and how many were cut.

    Attributes:
        ids: uint8 array (texts, length); 0 is padding.
        truncated: Number of texts longer than `length` bytes, which were cut
            to their first `length` bytes.
        lengths: Bytes kept per text.
    """

    ids: np.ndarray
    truncated: int
    lengths: np.ndarray


def encode_bytes(
    texts: Iterable[str], length: int = TWEET_BYTES, padding: str = "pre"
) -> EncodedText:
    """Encodes texts as UTF-8 byte ids, as the seed's (280, 256) input expects.

    Each text becomes `length` ids in 1..255 (its UTF-8 bytes; a NUL byte,
    which would collide with padding, becomes a space) padded with 0. The
    model one-hots them in the graph (`keras_mtl.layers.ByteOneHot`), so a
    tweet costs 280 bytes of memory instead of 280 x 256 floats.

    Args:
        texts: The texts.
        length: Bytes per text; longer texts are cut (and counted).
        padding: `"pre"` (default: padding first, so a recurrent encoder
            ends on the text) or `"post"`.

    Returns:
        An `EncodedText`.

    Example:
    >>> enc = encode_bytes(["hi", "é"], length=3)
    >>> enc.ids.tolist(), enc.truncated
    ([[0, 104, 105], [0, 195, 169]], 0)
    """
    if padding not in ("pre", "post"):
        raise ValueError(f"padding must be 'pre' or 'post', got {padding!r}.")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}.")
    texts = list(texts)
    ids = np.zeros((len(texts), length), dtype=np.uint8)
    lengths = np.zeros(len(texts), dtype=np.int32)
    truncated = 0
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"Text {i} is {type(text).__name__}, not str: {text!r}.")
        raw = text.encode("utf-8", errors="replace").replace(b"\x00", b" ")
        if len(raw) > length:
            truncated += 1
            raw = raw[:length]
        row = np.frombuffer(raw, dtype=np.uint8)
        lengths[i] = len(row)
        if padding == "pre":
            ids[i, length - len(row) :] = row
        else:
            ids[i, : len(row)] = row
    return EncodedText(ids, truncated, lengths)


def text_lengths(ids: np.ndarray) -> np.ndarray:
    """Lengths of pre-padded id rows (padding 0 first, as
    `keras_mtl.data.text.encode_bytes` writes them): the width after the last
    leading zero.

    Example:
    >>> text_lengths(np.array([[0, 0, 5, 6], [1, 0, 2, 3], [0, 0, 0, 0]])).tolist()
    [2, 4, 0]
    """
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"Byte ids must be (samples, length), got shape {ids.shape}.")
    out = np.empty(len(ids), dtype=np.int64)
    step = 1 << 16  # rows at a time: no copy of a large array as booleans
    for start in range(0, len(ids), step):
        nonzero = ids[start : start + step] != 0
        first = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), ids.shape[1])
        out[start : start + step] = ids.shape[1] - first
    return out
