"""UCI Census-Income (KDD), as in the MMoE and PLE papers.

The data is not shipped: `load(path)` reads a copy of `census-income.test.gz`
(99,762 rows; the 199,523-row training split is the other UCI file, which the
loader reads too when given). Tasks of the MMoE paper's group 1: `income`
(column 41 is "50000+.") and `never_married` (column 7, marital status, is
"Never married"). Column 24 is the instance weight, not a feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Column names in file order (from census-income.names).
COLUMNS = [
    "age",
    "class of worker",
    "detailed industry recode",
    "detailed occupation recode",
    "education",
    "wage per hour",
    "enroll in edu inst last wk",
    "marital stat",
    "major industry code",
    "major occupation code",
    "race",
    "hispanic origin",
    "sex",
    "member of a labor union",
    "reason for unemployment",
    "full or part time employment stat",
    "capital gains",
    "capital losses",
    "dividends from stocks",
    "tax filer stat",
    "region of previous residence",
    "state of previous residence",
    "detailed household and family stat",
    "detailed household summary in household",
    "instance weight",
    "migration code-change in msa",
    "migration code-change in reg",
    "migration code-move within reg",
    "live in this house 1 year ago",
    "migration prev res in sunbelt",
    "num persons worked for employer",
    "family members under 18",
    "country of birth father",
    "country of birth mother",
    "country of birth self",
    "citizenship",
    "own business or self employed",
    "fill inc questionnaire for veteran's admin",
    "veterans benefits",
    "weeks worked in year",
    "year",
    "income",
]
#: The continuous columns (the rest are nominal, numeric codes included).
NUMERIC = [
    "age",
    "wage per hour",
    "capital gains",
    "capital losses",
    "dividends from stocks",
    "num persons worked for employer",
    "weeks worked in year",
]
LABELS = ("income", "marital stat")
WEIGHT = "instance weight"
TASKS = ("income", "never_married")


@dataclass
class CensusSplit:
    """One split: the feature frame and the two tasks' 0/1 labels."""

    frame: Any
    y: dict[str, np.ndarray]
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)


def read(path: str | Path) -> Any:
    """Reads a census-income file (comma and space separated, no header)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No census-income file at {path}.")
    frame = pd.read_csv(
        path, header=None, skipinitialspace=True, dtype=str, keep_default_na=False
    )
    if frame.shape[1] != len(COLUMNS):
        raise ValueError(
            f"{path} has {frame.shape[1]} columns, expected {len(COLUMNS)}."
        )
    frame.columns = COLUMNS
    for name in [*NUMERIC, WEIGHT]:
        frame[name] = pd.to_numeric(frame[name])
    return frame


def labels(frame: Any) -> dict[str, np.ndarray]:
    """The tasks' labels: income over 50K, never married."""
    return {
        "income": (frame["income"].str.strip() == "50000+.").to_numpy(np.float32),
        "never_married": (
            frame["marital stat"].str.strip() == "Never married"
        ).to_numpy(np.float32),
    }


def load(
    path: str | Path,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
) -> dict[str, CensusSplit]:
    """Reads the file and splits it into train/validation/test by a seeded
    permutation (60/20/20 by default).

    Returns:
        {"train": ..., "val": ..., "test": ...}; each frame keeps every
        column, labels and weight included, so pass `exclude=EXCLUDE` to
        `FeatureSpec.from_frame`.
    """
    frame = read(path)
    order = np.random.default_rng(seed).permutation(len(frame))
    n_train = int(round(fractions[0] * len(order)))
    n_val = int(round(fractions[1] * len(order)))
    parts = {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }
    out = {}
    for name, rows in parts.items():
        part = frame.iloc[rows].reset_index(drop=True)
        out[name] = CensusSplit(part, labels(part), part[WEIGHT].to_numpy(np.float32))
    return out


#: Columns that are not features: the labels and the instance weight.
EXCLUDE = [*LABELS, WEIGHT]
