"""The yardstick: a bag-of-words logistic regression beside every text task.

A deep text model is worth its cost only if it beats the classic linear
model on the same split. For every binary or multiclass task that reads
text inputs, this fits TF-IDF word 1-2 grams (one vectorizer per input,
features side by side) and a logistic regression with balanced class
weights and C=1, on the task's labelled training rows only, and scores it
with the same code as the Keras models (`keras_mtl.evaluation.scoring.task_scores`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keras_mtl.evaluation.scoring import present, task_scores
from keras_mtl.tasks.task import Task

#: What the yardstick is, for tables and logs.
LABEL = "bag-of-words logistic regression"


def texts_of(ids: Any) -> list[str]:
    """Decodes byte ids (texts, length) back to text (padding dropped).

    Example:
    >>> from keras_mtl.data.text import encode_bytes
    >>> texts_of(encode_bytes(["héllo", "x"], length=8).ids)
    ['héllo', 'x']
    """
    ids = np.asarray(ids)
    return [
        bytes(row[row > 0].astype(np.uint8)).decode("utf-8", errors="replace")
        for row in ids
    ]


def supports(task: Task) -> bool:
    """Whether the yardstick fits this task: binary or multiclass labels."""
    return task.kind in ("binary", "multiclass")


class BagOfWords:
    """TF-IDF word 1-2 grams and a balanced logistic regression for one task.

    Args:
        task: A binary or multiclass task.
        inputs: The text inputs the task reads (one vectorizer each).
        C: Inverse regularisation strength of the logistic regression.

    Example:
    >>> yard = BagOfWords(Task("t"), ["text"])
    >>> x = {"text": ["good", "bad", "very good", "so bad", "good good", "bad bad"]}
    >>> y = np.array([1, 0, 1, 0, 1, 0])
    >>> yard.fit(x, y).predict({"text": ["good day", "bad day"]}).round(2).ravel().tolist()
    [0.68, 0.32]
    """

    def __init__(self, task: Task, inputs: Sequence[str], C: float = 1.0) -> None:
        if not supports(task):
            raise ValueError(
                f"Task '{task.name}': the bag-of-words yardstick fits binary and "
                f"multiclass tasks, not {task.kind}."
            )
        self.task = task
        self.inputs = list(inputs)
        self.C = float(C)

    def _features(self, x: Mapping[str, Sequence[str]], fit: bool) -> Any:
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer

        if fit:
            self.vectorizers = {
                n: TfidfVectorizer(ngram_range=(1, 2)) for n in self.inputs
            }
            parts = [self.vectorizers[n].fit_transform(x[n]) for n in self.inputs]
        else:
            parts = [self.vectorizers[n].transform(x[n]) for n in self.inputs]
        return parts[0] if len(parts) == 1 else hstack(parts).tocsr()

    def fit(self, x: Mapping[str, Sequence[str]], y: np.ndarray) -> BagOfWords:
        """Fits on the labelled rows of `y` (texts by input name)."""
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)[:, 0]
        keep = present(self.task, y)
        if keep.sum() == 0:
            raise ValueError(f"Task '{self.task.name}' has no labelled training row.")
        rows = np.flatnonzero(keep)
        texts = {n: [x[n][i] for i in rows] for n in self.inputs}
        self.classifier = LogisticRegression(
            C=self.C, class_weight="balanced", max_iter=2000
        )
        self.classifier.fit(self._features(texts, fit=True), y[rows].astype(np.int64))
        return self

    def predict(self, x: Mapping[str, Sequence[str]]) -> np.ndarray:
        """Probabilities shaped like the task's model output."""
        proba = self.classifier.predict_proba(self._features(x, fit=False))
        units = self.task.units if self.task.kind == "multiclass" else 2
        out = np.zeros((proba.shape[0], units))
        out[:, self.classifier.classes_.astype(np.int64)] = proba
        return out[:, 1:2] if self.task.kind == "binary" else out


def scores(
    tasks: Sequence[Task],
    text_inputs: Sequence[str],
    train: tuple[Mapping[str, Any], Mapping[str, np.ndarray]],
    splits: Mapping[str, tuple[Mapping[str, Any], Mapping[str, np.ndarray]]],
) -> dict[str, dict[str, dict[str, float]]]:
    """Fits the yardstick for every task it can serve and scores it.

    Args:
        tasks: The model's tasks (each with its resolved `inputs`).
        text_inputs: The inputs that hold text (byte ids or strings).
        train: `(x, y)` of the training split; `x` by input name as byte
            ids or lists of strings, `y` by task name.
        splits: `(x, y)` of the splits to score, by split name.

    Returns:
        `{split: {task: scores}}` for the tasks the yardstick serves: binary
        or multiclass tasks reading only text inputs, with training labels of
        two classes or more and words of two characters or more.
    """

    def text(x: Mapping[str, Any]) -> dict[str, list[str]]:
        return {
            n: list(x[n]) if isinstance(x[n], list) else texts_of(x[n])
            for n in text_inputs
        }

    # Each split's texts are decoded once, when a task first needs them.
    decoded: dict[str, dict[str, list[str]]] = {}

    def texts(split: str) -> dict[str, list[str]]:
        if split not in decoded:
            decoded[split] = text(train[0] if split == "" else splits[split][0])
        return decoded[split]

    out: dict[str, dict[str, dict[str, float]]] = {name: {} for name in splits}
    for task in tasks:
        names = list(task.inputs or text_inputs)
        if not supports(task) or not names or any(n not in text_inputs for n in names):
            continue
        if task.name not in train[1]:
            continue
        labels = np.asarray(train[1][task.name])
        if not present(task, labels.reshape(len(labels), -1)[:, :1]).any():
            continue
        try:
            model = BagOfWords(task, names).fit(texts(""), labels)
        except ValueError:
            # No word of two or more characters in the task's training texts
            # (scikit-learn's "empty vocabulary"), or one class only: no row.
            continue
        for split, (_, y) in splits.items():
            if task.name in y:
                out[split][task.name] = task_scores(
                    task, y[task.name], model.predict(texts(split))
                )
    return out
