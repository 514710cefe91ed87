"""A word vocabulary tokenizer learned from training texts."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

_WORD = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks.

    Example:
    >>> words("I can't wait!!")
    ['i', "can't", 'wait', '!', '!']
    """
    return _WORD.findall(text.lower())


class WordVocabulary:
    """Maps texts to word ids: 0 pads, 1 is out of vocabulary.

    Args:
        vocabulary: Known words, most frequent first.
        length: Ids per text; longer texts are cut.
    """

    def __init__(self, vocabulary: list[str], length: int = 64) -> None:
        self.vocabulary = list(vocabulary)
        self.length = int(length)
        self._ids = {w: i + 2 for i, w in enumerate(self.vocabulary)}

    @classmethod
    def fit(
        cls,
        texts: Iterable[str],
        size: int = 20000,
        length: int = 64,
        min_count: int = 2,
    ) -> WordVocabulary:
        """The `size` most frequent words of training texts seen at least
        `min_count` times."""
        counts = Counter(w for t in texts for w in words(str(t)))
        common = [w for w, n in counts.most_common(size) if n >= min_count]
        return cls(common, length)

    @property
    def size(self) -> int:
        """Ids in use, padding and OOV included."""
        return len(self.vocabulary) + 2

    def encode(self, texts: Iterable[str]) -> tuple[np.ndarray, int]:
        """(ids (texts, length), number of texts cut)."""
        texts = list(texts)
        out = np.zeros((len(texts), self.length), dtype=np.int32)
        cut = 0
        for i, text in enumerate(texts):
            ids = [self._ids.get(w, 1) for w in words(str(text))]
            if len(ids) > self.length:
                cut += 1
                ids = ids[: self.length]
            out[i, : len(ids)] = ids
        return out, cut

    def get_config(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary, "length": self.length}
