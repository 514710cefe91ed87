"""A new user's mistakes through the Python API, on every backend: each one
stops with one sentence or is handled, never trains on wrong numbers."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from keras_mtl import MultiTaskModel, Task

pytestmark = pytest.mark.model


def _model() -> MultiTaskModel:
    image = keras.Input((4,), name="image")
    aux = keras.Input((2,), name="aux")
    h = keras.layers.Concatenate()([keras.layers.Dense(8)(image), aux])
    outputs = {
        "digit": keras.layers.Dense(10, activation="softmax", name="digit")(h),
        "parity": keras.layers.Dense(1, activation="sigmoid", name="parity")(h),
        "big": keras.layers.Dense(1, activation="sigmoid", name="big")(h),
    }
    model = MultiTaskModel(
        inputs={"image": image, "aux": aux},
        outputs=outputs,
        tasks=[
            Task("digit", "multiclass", num_classes=10),
            Task("parity"),
            Task("big"),
        ],
    )
    model.compile(optimizer="sgd")
    return model


def _data(n: int = 32) -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    x = {
        "image": rng.normal(size=(n, 4)).astype("float32"),
        "aux": rng.normal(size=(n, 2)).astype("float32"),
    }
    digit = np.arange(n) % 10
    y = {
        "digit": digit,
        "parity": (digit % 2).astype("float32"),
        "big": (digit >= 5).astype("float32"),
    }
    return x, y


@pytest.mark.parametrize(
    ("task", "value", "expected"),
    [
        ("digit", 12, "label 12 at row 7 of y is outside its classes 0..9"),
        ("digit", 10, "label 10 at row 7 of y is outside its classes 0..9"),
        ("digit", -5, "label -5 at row 7 of y is outside its classes 0..9"),
        ("parity", 2, "label 2 at row 7 of y is outside 0 or 1"),
    ],
)
def test_out_of_range_labels_in_arrays_stop_fit_and_evaluate(task, value, expected):
    model = _model()
    x, y = _data()
    y[task] = y[task].copy()
    y[task][7] = value
    before = [np.array(w) for w in model.get_weights()]
    with pytest.raises(ValueError, match=f"Task '{task}': {expected}"):
        model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=f"Task '{task}': {expected}"):
        model.evaluate(x, y, verbose=0)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # not one step was taken


def test_out_of_range_labels_in_pandas_columns():
    import pandas as pd

    model = _model()
    x, y = _data()
    frame = pd.DataFrame(y)
    frame.loc[3, "parity"] = 0.5
    with pytest.raises(ValueError, match="label 0.5 at row 3 of y is outside 0 or 1"):
        model.fit(x, {k: frame[k] for k in frame}, epochs=1, verbose=0)


def test_out_of_range_labels_from_a_generator_stop_at_their_batch():
    model = _model()
    x, y = _data()
    y["big"] = y["big"].copy()
    y["big"][21] = 3.0  # batch 2 (rows 16..31), row 5

    def batches():
        while True:
            for start in (0, 16):
                yield (
                    {k: v[start : start + 16] for k, v in x.items()},
                    {k: v[start : start + 16] for k, v in y.items()},
                )

    message = "Task 'big': label 3 at row 5 of training batch 2 is outside 0 or 1"
    with pytest.raises(ValueError, match=message):
        model.fit(batches(), steps_per_epoch=2, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="row 5 of evaluation batch 2"):
        model.evaluate(batches(), steps=2, verbose=0)


def test_missing_labels_are_not_errors_and_an_unlabelled_task_is_nan():
    model = _model()
    x, y = _data()
    y["digit"] = np.where(np.arange(32) % 3 == 0, -1, y["digit"])
    y["parity"] = np.where(np.arange(32) % 4 == 0, np.nan, y["parity"])
    y["big"] = np.full(32, np.nan, "float32")
    with pytest.warns(UserWarning, match="Task 'big' has no labelled sample in the"):
        logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert np.isnan(logs["big_loss"]) and np.isnan(logs["big_accuracy"])
    assert np.isfinite(logs["loss"]) and np.isfinite(logs["digit_loss"])
    assert not any(k.startswith("label_fault") for k in logs)
    # The total is the labelled tasks' sum: the unlabelled one adds nothing.
    np.testing.assert_allclose(
        logs["loss"], logs["digit_loss"] + logs["parity_loss"], rtol=1e-5
    )


def test_input_names_and_a_list_in_input_order():
    model = _model()
    x, y = _data()
    with pytest.raises(
        ValueError,
        match=r"x names the inputs 'img', 'aux' but the model's inputs are "
        r"'image', 'aux' \(unknown 'img'; missing 'image'\)",
    ):
        model.fit({"img": x["image"], "aux": x["aux"]}, y, epochs=1, verbose=0)
    as_list = [x["image"], x["aux"]]  # the order the inputs were declared in
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.fit(as_list, y, epochs=1, verbose=0)
        from_list = model.predict(as_list, verbose=0)
    from_dict = model.predict(x, verbose=0)
    for name in model.task_names:
        np.testing.assert_allclose(from_list[name], from_dict[name], rtol=1e-6)


def test_predict_returns_tasks_in_the_model_order():
    model = _model()
    x, _ = _data(4)
    assert list(model.predict(x, verbose=0)) == ["digit", "parity", "big"]
    assert model.task_names == ["digit", "parity", "big"]
