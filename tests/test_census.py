"""The Census-Income loader on the shared data (skipped when absent)."""

from __future__ import annotations

import numpy as np
import pytest

from keras_mtl.data.tabular import FeatureSpec
from keras_mtl.datasets import census_income


@pytest.fixture(scope="module")
def splits(data_dir):
    path = data_dir / "census-income" / "census-income.test.gz"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return census_income.load(path, seed=0)


def test_rows_split_and_labels(splits):
    sizes = {k: len(v) for k, v in splits.items()}
    assert sum(sizes.values()) == 99_762
    assert sizes["train"] == round(0.6 * 99_762) and sizes["val"] == round(0.2 * 99_762)
    everything = np.concatenate([s.y["income"] for s in splits.values()])
    assert everything.mean() == pytest.approx(0.062, abs=0.002)
    married = np.concatenate([s.y["never_married"] for s in splits.values()])
    assert married.mean() == pytest.approx(0.43, abs=0.01)


def test_features_exclude_labels_and_weight(splits):
    spec = FeatureSpec.from_frame(
        splits["train"].frame,
        numeric=census_income.NUMERIC,
        exclude=census_income.EXCLUDE,
    )
    names = {c.name for c in spec.numeric} | {c.name for c in spec.categorical}
    assert not names & set(census_income.EXCLUDE)
    assert len(spec.numeric) == 7 and len(spec.categorical) == 32
    encoded = spec.encode(splits["test"].frame)
    assert encoded.inputs["numeric"].shape == (len(splits["test"]), 7)
