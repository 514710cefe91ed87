"""Tabular inputs: a feature spec learned from training data only."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from keras_mtl import Task, build_model
from keras_mtl.data.tabular import FeatureSpec
from keras_mtl.evaluation import delta_m
from keras_mtl.layers import TabularEncoder


def _frame():
    return pd.DataFrame(
        {
            "age": [20.0, 30.0, 40.0, np.nan],
            "city": ["Paris", "Lyon", "Paris", None],
            "code": [1, 2, 1, 3],
            "label": [0, 1, 0, 1],
        }
    )


def test_spec_learns_from_training_data_only():
    spec = FeatureSpec.from_frame(_frame(), categorical=["code"], exclude=["label"])
    assert [c.name for c in spec.numeric] == ["age"]
    assert [c.name for c in spec.categorical] == ["city", "code"]
    assert spec.numeric[0].mean == pytest.approx(30.0)
    assert spec.numeric[0].std == pytest.approx(np.std([20.0, 30.0, 40.0]))
    assert spec.categorical[0].vocabulary == ["Lyon", "Paris"]
    assert spec.categorical[1].vocabulary == ["1", "2", "3"]


def test_unseen_categories_go_to_the_oov_bucket_and_are_counted():
    spec = FeatureSpec.from_frame(_frame(), categorical=["code"], exclude=["label"])
    new = pd.DataFrame({"age": [30.0, 50.0], "city": ["Nice", "Lyon"], "code": [9, 2]})
    encoded = spec.encode(new)
    np.testing.assert_array_equal(encoded.inputs["cat_city"], [0, 1])
    np.testing.assert_array_equal(encoded.inputs["cat_code"], [0, 2])
    assert encoded.unseen == {"city": 1, "code": 1}
    np.testing.assert_allclose(
        encoded.inputs["numeric"][:, 0], [0.0, 20 / np.std([20, 30, 40])], rtol=1e-6
    )
    missing = spec.encode(_frame())
    assert missing.missing == {"age": 1} and missing.unseen["city"] == 0
    assert missing.inputs["numeric"][3, 0] == 0.0  # filled with the mean


def test_min_count_and_errors(tmp_path):
    frame = pd.DataFrame({"c": ["a", "a", "b"], "x": [1.0, 2.0, 3.0]})
    assert FeatureSpec.from_frame(frame, min_count=2).categorical[0].vocabulary == ["a"]
    with pytest.raises(ValueError, match="Column 'nope' is not in the data"):
        FeatureSpec.from_frame(frame, exclude=["nope"])
    spec = FeatureSpec.from_frame(frame)
    with pytest.raises(ValueError, match="The data has no column 'x'"):
        spec.encode(frame[["c"]])
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert FeatureSpec.from_csv(tmp_path / "t.csv").get_config() == spec.get_config()


@pytest.mark.model
def test_tabular_model_round_trip(rng, tmp_path):
    n = 200
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "c": rng.choice(["u", "v", "w"], size=n),
        }
    )
    y = {
        "pos": (frame["x"] > 0).to_numpy("float32"),
        "is_u": (frame["c"] == "u").to_numpy("float32"),
    }
    spec = FeatureSpec.from_frame(frame)
    model = build_model(
        spec.inputs(),
        TabularEncoder(spec),
        [Task("pos"), Task("is_u")],
        architecture="mmoe",
    )
    assert model.tasks[0].inputs == ["numeric", "cat_c"]
    x = spec.encode(frame).inputs
    model.compile(optimizer=keras.optimizers.Adam(0.05), metrics=["accuracy"])
    model.fit(x, y, epochs=20, batch_size=50, verbose=0)
    logs = model.evaluate(x, y, return_dict=True, verbose=0)
    assert logs["pos_accuracy"] > 0.9 and logs["is_u_accuracy"] > 0.9
    model.save(tmp_path / "tab.keras")
    loaded = keras.models.load_model(tmp_path / "tab.keras")
    np.testing.assert_allclose(
        loaded.predict_tasks(x)["pos"], model.predict_tasks(x)["pos"], rtol=1e-6
    )


def test_delta_m_by_hand():
    results = {"a": {"auc": 0.92, "acc": 0.80}, "b": {"mae": 0.9}}
    base = {"a": {"auc": 0.90, "acc": 0.82}, "b": {"mae": 1.0}}
    expected = 100 * ((0.02 / 0.90 - 0.02 / 0.82) / 2 + 0.1 / 1.0) / 2
    assert delta_m(
        results, base, {"auc": True, "acc": True, "mae": False}
    ) == pytest.approx(expected)
    with pytest.raises(ValueError, match="Say whether higher is better for 'f1'"):
        delta_m({"a": {"f1": 1.0}}, {"a": {"f1": 1.0}}, {})
    # Plain {task: score} dicts, one direction for all or one per task.
    assert delta_m({"a": 0.92, "b": 0.9}, {"a": 0.90, "b": 1.0}) == pytest.approx(
        100 * (0.02 / 0.90 - 0.1) / 2
    )
    assert delta_m(
        {"a": 0.92, "b": 0.9}, {"a": 0.90, "b": 1.0}, {"a": True, "b": False}
    ) == pytest.approx(100 * (0.02 / 0.90 + 0.1) / 2)
    assert delta_m({"b": 0.9}, {"b": 1.0}, higher_is_better=False) == pytest.approx(
        10.0
    )
