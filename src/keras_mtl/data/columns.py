"""From the columns of a table to model inputs and per-task labels: how
`[inputs.<name>]` fills an input (`InputFiller`) and how a task's column
becomes its labels (`labels_for`), missing labels included."""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_mtl.data.mixing import missing_label
from keras_mtl.data.text import encode_bytes
from keras_mtl.data.vocabulary import WordVocabulary
from keras_mtl.tasks.task import Task, closest


def labels_for(task: Task, values: Any, where: str) -> np.ndarray:
    """A task's labels from a column, checked: class ids within range,
    binary labels 0/1, numbers where numbers are expected; missing values
    become NaN (or -1 for class ids)."""
    import pandas as pd

    numeric = pd.to_numeric(pd.Series(values), errors="coerce")
    bad = numeric.isna() & pd.Series(values).notna()
    if bad.any():
        first = pd.Series(values)[bad].iloc[0]
        raise ValueError(
            f"{where}: task '{task.name}' has a non-numeric label {first!r}."
        )
    array = numeric.to_numpy(np.float64)
    if task.kind == "multiclass":
        present = ~np.isnan(array) & (array != -1)
        wrong = present & (
            (array < 0) | (array >= task.units) | (array != np.round(array))
        )
        if wrong.any():
            raise ValueError(
                f"{where}: task '{task.name}' has label {array[wrong][0]:g}, "
                f"outside the class ids 0..{task.units - 1}."
            )
        return np.where(present, array, -1).astype(np.int32)
    if task.kind in ("binary", "multilabel"):
        present = ~np.isnan(array) & (array != -1)
        wrong = present & ~np.isin(array, (0.0, 1.0))
        if wrong.any():
            raise ValueError(
                f"{where}: task '{task.name}' is {task.kind}: labels must be "
                f"0 or 1, got {array[wrong][0]:g}."
            )
        return np.where(present, array, np.nan).astype(np.float32)
    return array.astype(np.float32)


class InputFiller:
    """Fills model inputs from frame columns (`[inputs.<name>]` tables);
    vocabularies are learned from the training frame."""

    def __init__(self, inputs: dict[str, dict[str, Any]]) -> None:
        self.inputs = inputs
        self.vocabularies: dict[str, WordVocabulary] = {}
        self.cut: dict[str, int] = {}

    def fit(self, frame: Any) -> None:
        for name, table in self.inputs.items():
            if table.get("encoding") == "words":
                column = self._column(frame, name, table, "training data")
                self.vocabularies[name] = WordVocabulary.fit(
                    frame[column].astype(str),
                    size=table.get("vocabulary_size", 20000),
                    length=table.get("length", (table.get("shape") or [64])[0]),
                )

    def _column(self, frame: Any, name: str, table: dict, where: str) -> str:
        column = table.get("column", name)
        if column not in frame.columns:
            raise ValueError(
                f"{where}: input '{name}' reads column {column!r}, which the "
                f"data lacks (columns: {', '.join(map(str, frame.columns))})"
                f"{closest(str(column), [str(c) for c in frame.columns])}."
            )
        return column

    def __call__(self, frame: Any, where: str) -> dict[str, np.ndarray]:
        import pandas as pd

        out = {}
        for name, table in self.inputs.items():
            column = self._column(frame, name, table, where)
            encoding = table.get("encoding", "number")
            values = frame[column]
            if encoding == "bytes":
                length = table.get("length", (table.get("shape") or [280])[0])
                encoded = encode_bytes(values.fillna("").astype(str), length=length)
                self.cut[name] = self.cut.get(name, 0) + encoded.truncated
                out[name] = encoded.ids
            elif encoding == "words":
                ids, cut = self.vocabularies[name].encode(values.fillna("").astype(str))
                self.cut[name] = self.cut.get(name, 0) + cut
                out[name] = ids
            else:
                shape = list(table.get("shape") or [])
                width = int(np.prod(shape)) if shape else 1
                if encoding == "numbers":
                    numbers = _number_lists(values, width, shape, name, column, where)
                else:
                    if width != 1:
                        raise ValueError(
                            f"{where}: input '{name}' reads one number per row "
                            f"from column {column!r}, but its shape is {shape}; "
                            'give shape = [] or encoding = "numbers" for a list '
                            "of numbers per row."
                        )
                    numbers = pd.to_numeric(values, errors="coerce").to_numpy(
                        np.float64
                    )
                bad = ~np.isfinite(numbers.reshape(len(values), -1)).all(axis=1)
                if bad.any():
                    raise ValueError(
                        f"{where}: input '{name}' (column {column!r}) has "
                        f"{int(bad.sum())} row(s) with missing, infinite or "
                        f"non-numeric values, first at row {int(np.argmax(bad))}."
                    )
                dtype = np.int32 if encoding == "id" else np.float32
                out[name] = numbers.astype(dtype).reshape((-1, *shape))
        return out


def _number_lists(
    values: Any, width: int, shape: list[int], name: str, column: str, where: str
) -> np.ndarray:
    """A column of number lists (a list, or numbers separated by spaces or
    commas) as an array of rows of `width` numbers."""
    rows = np.empty((len(values), width), np.float64)
    for i, value in enumerate(values):
        if isinstance(value, str):
            parts: Any = value.replace(",", " ").split()
        elif isinstance(value, list | tuple | np.ndarray):
            parts = list(value)
        else:
            parts = [value]
        try:
            row = np.asarray(parts, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(
                f"{where}: input '{name}' (column {column!r}) row {i} is "
                f"{str(value)[:40]!r}, not a list of numbers."
            ) from None
        if row.size != width:
            raise ValueError(
                f"{where}: input '{name}' (column {column!r}) row {i} has "
                f"{row.size} numbers; its shape {shape} needs {width}."
            )
        rows[i] = row
    return rows


def task_labels(
    frame: Any,
    tasks: list[Task],
    mapping: dict[str, str],
    where: str,
    only: list[str] | None = None,
) -> dict[str, np.ndarray]:
    y = {}
    n = len(frame)
    for task in tasks:
        if only is not None and task.name not in only:
            y[task.name] = missing_label(task, (n,))
            continue
        column = mapping.get(task.name, task.name)
        if column not in frame.columns:
            raise ValueError(
                f"{where}: no label column {column!r} for task '{task.name}' "
                f"(columns: {', '.join(map(str, frame.columns))})."
            )
        y[task.name] = labels_for(task, frame[column], where)
    return y


def no_labels(y: dict[str, np.ndarray], tasks: list[Task], where: str) -> None:
    for task in tasks:
        values = y[task.name]
        present = values != -1 if task.kind == "multiclass" else ~np.isnan(values)
        if not present.any():
            raise ValueError(
                f"{where}: task '{task.name}' has no labelled sample in the "
                "training data."
            )
