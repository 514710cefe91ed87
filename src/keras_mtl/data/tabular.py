"""Tabular inputs: a feature spec learned from training data only.

`FeatureSpec.from_frame(train_frame)` decides which columns are numeric and
which categorical, learns each numeric column's mean and standard deviation
and each categorical column's vocabulary, and `spec.encode(frame)` turns any
frame with those columns into model inputs: one float matrix of normalised
numeric columns and one integer id array per categorical column. Id 0 is
the out-of-vocabulary bucket: categories never seen in training (and missing
values) map there and are counted, never crash.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

NUMERIC_INPUT = "numeric"


def _frame(data: Any) -> Any:
    """A pandas DataFrame from pandas, polars or a dict of columns."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "to_pandas"):  # polars
        return data.to_pandas()
    if isinstance(data, dict):
        return pd.DataFrame(data)
    raise TypeError(
        f"Expected a pandas or polars DataFrame, got {type(data).__name__}."
    )


def input_name(column: str, taken: Iterable[str] = ()) -> str:
    """A Keras input name for a column: letters, digits and underscores.

    Example:
    >>> input_name("class of worker")
    'cat_class_of_worker'
    """
    base = "cat_" + (re.sub(r"\W+", "_", column.strip()).strip("_") or "column")
    name, i = base, 1
    while name in set(taken):
        i += 1
        name = f"{base}_{i}"
    return name


def embedding_width(categories: int) -> int:
    """A default embedding width: 6 (categories + 1)^(1/4), at most 16."""
    return int(min(16, math.ceil(6 * (categories + 1) ** 0.25)))


@dataclass
class NumericColumn:
    name: str
    mean: float
    std: float


@dataclass
class CategoricalColumn:
    name: str
    vocabulary: list[str]
    embedding_dim: int
    input: str = ""


@dataclass
class Encoded:
    """A frame encoded for the model.

    Attributes:
        inputs: Model inputs by name (`"numeric"` and one per categorical
            column).
        unseen: Per categorical column, values not in its vocabulary (they
            went to the out-of-vocabulary bucket, id 0).
        missing: Per numeric column, missing values (filled with the
            training mean).
    """

    inputs: dict[str, np.ndarray]
    unseen: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)


class FeatureSpec:
    """Numeric and categorical columns with what training data taught.

    Args:
        numeric: The numeric columns.
        categorical: The categorical columns.
    """

    def __init__(
        self, numeric: Sequence[NumericColumn], categorical: Sequence[CategoricalColumn]
    ) -> None:
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        taken = [NUMERIC_INPUT]
        for column in self.categorical:
            if not column.input:
                column.input = input_name(column.name, taken)
            taken.append(column.input)
        self._index = [
            {v: i + 1 for i, v in enumerate(c.vocabulary)} for c in self.categorical
        ]

    @classmethod
    def from_frame(
        cls,
        frame: Any,
        numeric: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        min_count: int = 1,
        embedding_dim: int | None = None,
    ) -> FeatureSpec:
        """Learns a spec from a training frame.

        Args:
            frame: Training data (pandas or polars DataFrame).
            numeric: Columns to treat as numeric.
            categorical: Columns to treat as categorical (numeric codes,
                say). Every other column not excluded is typed by its data:
                numbers are numeric, the rest categorical.
            exclude: Columns that are not features (labels, weights, ids).
            min_count: Categories seen fewer times go to the OOV bucket.
            embedding_dim: Width of every embedding (default: by size).
        """
        import pandas as pd

        frame = _frame(frame)
        unknown = [
            c
            for c in [*(numeric or []), *(categorical or []), *exclude]
            if c not in frame.columns
        ]
        if unknown:
            raise ValueError(
                f"Column {unknown[0]!r} is not in the data; columns are "
                f"{', '.join(map(str, frame.columns))}."
            )
        # Every column not excluded is a feature: listed columns take the
        # listed type, the others the type of their data.
        columns = [c for c in frame.columns if c not in set(exclude)]
        listed_numeric, listed_categorical = set(numeric or []), set(categorical or [])
        numeric = [
            c
            for c in columns
            if c in listed_numeric
            or (
                c not in listed_categorical
                and pd.api.types.is_numeric_dtype(frame[c])
                and not pd.api.types.is_bool_dtype(frame[c])
            )
        ]
        categorical = [c for c in columns if c not in set(numeric)]
        numeric_columns = []
        for name in numeric:
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(
                dtype=np.float64
            )
            values = values[np.isfinite(values)]
            if values.size == 0:
                raise ValueError(
                    f"Numeric column {name!r} has no number in the training data."
                )
            std = float(values.std())
            numeric_columns.append(
                NumericColumn(str(name), float(values.mean()), std if std > 0 else 1.0)
            )
        categorical_columns = []
        for name in categorical:
            counts = frame[name].dropna().astype(str).str.strip().value_counts()
            vocabulary = sorted(str(v) for v, n in counts.items() if n >= min_count)
            dim = embedding_dim or embedding_width(len(vocabulary))
            categorical_columns.append(
                CategoricalColumn(str(name), vocabulary, int(dim))
            )
        return cls(numeric_columns, categorical_columns)

    @classmethod
    def from_csv(cls, path: str | Path, **kwargs: Any) -> FeatureSpec:
        """Learns a spec from a CSV file (see `from_frame` for arguments)."""
        import pandas as pd

        return cls.from_frame(pd.read_csv(path), **kwargs)

    def encode(self, frame: Any) -> Encoded:
        """Model inputs for a frame with the spec's columns.

        Raises:
            ValueError: A spec column is missing from the frame.
        """
        import pandas as pd

        frame = _frame(frame)
        needed = [c.name for c in self.numeric] + [c.name for c in self.categorical]
        absent = [c for c in needed if c not in frame.columns]
        if absent:
            raise ValueError(
                f"The data has no column {absent[0]!r}, which the feature "
                "spec was learned with."
            )
        n = len(frame)
        numeric = np.zeros((n, len(self.numeric)), dtype=np.float32)
        missing = {}
        for j, column in enumerate(self.numeric):
            values = pd.to_numeric(frame[column.name], errors="coerce").to_numpy(
                np.float64
            )
            bad = ~np.isfinite(values)
            missing[column.name] = int(bad.sum())
            numeric[:, j] = np.where(bad, 0.0, (values - column.mean) / column.std)
        inputs = {NUMERIC_INPUT: numeric}
        unseen = {}
        for column, index in zip(self.categorical, self._index, strict=True):
            raw = frame[column.name]
            text = raw.astype(str).str.strip()
            ids = text.map(index).fillna(0).to_numpy(np.int32)
            ids[raw.isna().to_numpy()] = 0
            unseen[column.name] = int(((ids == 0) & raw.notna().to_numpy()).sum())
            inputs[column.input] = ids
        return Encoded(inputs, unseen, missing)

    def inputs(self) -> dict[str, keras.KerasTensor]:
        """The model's `keras.Input`s, one per entry of `encode().inputs`."""
        out = {NUMERIC_INPUT: keras.Input((len(self.numeric),), name=NUMERIC_INPUT)}
        for column in self.categorical:
            out[column.input] = keras.Input((), dtype="int32", name=column.input)
        return out

    def get_config(self) -> dict[str, Any]:
        return {
            "numeric": [vars(c) for c in self.numeric],
            "categorical": [vars(c) for c in self.categorical],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FeatureSpec:
        return cls(
            [NumericColumn(**c) for c in config["numeric"]],
            [CategoricalColumn(**c) for c in config["categorical"]],
        )

    def __repr__(self) -> str:
        return (
            f"FeatureSpec({len(self.numeric)} numeric, {len(self.categorical)} "
            "categorical columns)"
        )
