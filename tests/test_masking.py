"""Missing labels: losses and metrics against hand computations."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from layer_checks import as_numpy

from keras_mtl import Task, build_model
from keras_mtl.tasks.masking import labels, task_loss, unreduced

pytestmark = pytest.mark.model

BCE = unreduced("binary_crossentropy")


def bce(y, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_binary_nan_and_minus_one_are_skipped():
    task = Task("t")
    y = np.array([1.0, np.nan, 0.0, -1.0, 1.0], "float32")
    p = np.array([0.8, 0.1, 0.3, 0.9, 0.6], "float32").reshape(-1, 1)
    loss, count = task_loss(task, BCE, y, p)
    keep = [0, 2, 4]
    expected = bce(y[keep], p[keep, 0]).mean()
    assert float(as_numpy(count)) == 3
    assert float(as_numpy(loss)) == pytest.approx(expected, rel=1e-5)


def test_a_non_finite_prediction_gives_a_nan_loss_only_where_labelled():
    """On every backend (PyTorch's binary cross-entropy raises on NaN
    probabilities): NaN for a labelled sample, nothing for an unlabelled."""
    p = np.array([0.8, np.nan, 0.3], "float32").reshape(-1, 1)
    loss, _ = task_loss(Task("t"), BCE, np.array([1.0, 0.0, 0.0], "float32"), p)
    assert np.isnan(float(as_numpy(loss)))
    masked = np.array([1.0, np.nan, 0.0], "float32")
    loss, count = task_loss(Task("t"), BCE, masked, p)
    expected = bce(np.array([1.0, 0.0]), np.array([0.8, 0.3])).mean()
    assert float(as_numpy(count)) == 2
    assert float(as_numpy(loss)) == pytest.approx(expected, rel=1e-5)
    scores = np.array([[0.2, np.inf, 0.1], [0.5, 0.3, 0.2]], "float32")
    sparse = unreduced("sparse_categorical_crossentropy")
    loss, _ = task_loss(Task("k", "multiclass", num_classes=3), sparse, [0, 1], scores)
    assert np.isnan(float(as_numpy(loss)))


def test_integer_labels_use_minus_one():
    task = Task("t")
    y = np.array([1, -1, 0], "int32")
    p = np.array([[0.7], [0.2], [0.4]], "float32")
    loss, count = task_loss(task, BCE, y, p)
    assert float(as_numpy(count)) == 2
    assert float(as_numpy(loss)) == pytest.approx(
        (bce(1, 0.7) + bce(0, 0.4)) / 2, rel=1e-5
    )


def test_sample_weight_zero_is_an_explicit_mask_and_weights_scale():
    task = Task("t")
    y = np.array([1.0, 0.0, 1.0], "float32")
    p = np.array([[0.7], [0.2], [0.4]], "float32")
    w = np.array([2.0, 0.0, 1.0], "float32")
    loss, count = task_loss(task, BCE, y, p, w)
    # Weighted sum over present labels, divided by their number (Keras's
    # sum-over-batch-size rule restricted to labelled samples).
    assert float(as_numpy(count)) == 2
    assert float(as_numpy(loss)) == pytest.approx(
        (2 * bce(1, 0.7) + bce(1, 0.4)) / 2, rel=1e-5
    )


def test_all_missing_batch_adds_exactly_zero():
    task = Task("t")
    y = np.full(4, np.nan, "float32")
    p = np.array([[0.0], [1.0], [0.5], [1e-12]], "float32")  # inf loss if used
    loss, count = task_loss(task, BCE, y, p)
    assert float(as_numpy(loss)) == 0.0
    assert float(as_numpy(count)) == 0.0


def test_multiclass_minus_one():
    task = Task("c", "multiclass", num_classes=3)
    y = np.array([2, -1, 0], "int32")
    p = np.array([[0.2, 0.3, 0.5], [0.9, 0.05, 0.05], [0.6, 0.3, 0.1]], "float32")
    loss, count = task_loss(task, unreduced("sparse_categorical_crossentropy"), y, p)
    assert float(as_numpy(count)) == 2
    assert float(as_numpy(loss)) == pytest.approx(
        -(np.log(0.5) + np.log(0.6)) / 2, rel=1e-5
    )


def test_multilabel_masks_label_by_label():
    task = Task("m", "multilabel", num_classes=2)
    y = np.array([[1.0, np.nan], [np.nan, 0.0], [0.0, 1.0]], "float32")
    p = np.array([[0.9, 0.5], [0.5, 0.2], [0.3, 0.8]], "float32")
    loss, count = task_loss(task, BCE, y, p)
    expected = np.mean([bce(1, 0.9), bce(0, 0.2), bce(0, 0.3), bce(1, 0.8)])
    assert float(as_numpy(count)) == 4
    assert float(as_numpy(loss)) == pytest.approx(expected, rel=1e-5)


def test_regression_only_nan_is_missing():
    task = Task("r", "regression")
    y = np.array([-1.0, np.nan, 2.0], "float32")  # -1 is a real value here
    p = np.array([[0.0], [5.0], [1.0]], "float32")
    loss, count = task_loss(task, unreduced("mse"), y, p)
    assert float(as_numpy(count)) == 2
    assert float(as_numpy(loss)) == pytest.approx((1.0 + 1.0) / 2)


def test_labels_are_made_safe():
    task = Task("t")
    safe = labels(task, np.array([np.nan, 1.0], "float32"), np.zeros((2, 1), "float32"))
    assert as_numpy(safe.y).tolist() == [[0.0], [1.0]]
    assert as_numpy(safe.present).tolist() == [[0.0], [1.0]]


def _model():
    return build_model(
        {"x": (3,)},
        keras.layers.Dense(4, name="shared"),
        [Task("t1"), Task("t2")],
    )


def test_fit_with_an_unlabelled_task_keeps_its_head_and_stays_finite(rng):
    model = _model()
    model.compile(optimizer="sgd")
    x = rng.normal(size=(16, 3)).astype("float32")
    y = {"t1": rng.integers(0, 2, 16).astype("float32"), "t2": np.full(16, np.nan)}
    head_before = [as_numpy(w).copy() for w in model.get_layer("t2").weights]
    with pytest.warns(UserWarning, match="Task 't2' has no labelled sample"):
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # No label, no loss: NaN (warned once), never a 0.0 that reads as perfect.
    assert np.isnan(history.history["t2_loss"]).all()
    assert np.isnan(history.history["t2_accuracy"]).all()
    for before, after in zip(head_before, model.get_layer("t2").weights, strict=True):
        np.testing.assert_array_equal(before, as_numpy(after))
    # The same with t2 left out of the y dict entirely.
    with pytest.warns(UserWarning, match="Task 't2' has no labelled sample"):
        history = model.fit(x, {"t1": y["t1"]}, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_evaluate_metrics_match_numpy_on_labelled_samples(rng):
    model = _model()
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    x = rng.normal(size=(40, 3)).astype("float32")
    y1 = rng.integers(0, 2, 40).astype("float32")
    y1[::3] = np.nan
    y2 = rng.integers(0, 2, 40).astype("int32")
    y2[1::4] = -1
    result = model.evaluate(
        x, {"t1": y1, "t2": y2}, batch_size=7, return_dict=True, verbose=0
    )
    p = model.predict_tasks(x)
    for name, y in (("t1", y1), ("t2", y2.astype("float32"))):
        keep = ~np.isnan(y) & (y != -1)
        acc = ((p[name][keep, 0] >= 0.5) == (y[keep] == 1)).mean()
        assert result[f"{name}_accuracy"] == pytest.approx(acc, abs=1e-6)
        assert result[f"{name}_loss"] == pytest.approx(
            bce(y[keep], p[name][keep, 0]).mean(), rel=1e-4
        )
    # Over one batch the summed loss is the sum of the task losses (over
    # several, each task's epoch mean weights batches by labelled counts).
    whole = model.evaluate(
        x, {"t1": y1, "t2": y2}, batch_size=40, return_dict=True, verbose=0
    )
    assert whole["loss"] == pytest.approx(whole["t1_loss"] + whole["t2_loss"], rel=1e-5)


def test_per_task_sample_weight_dict_masks(rng):
    model = _model()
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    x = rng.normal(size=(10, 3)).astype("float32")
    y = {k: rng.integers(0, 2, 10).astype("float32") for k in ("t1", "t2")}
    mask = np.r_[np.ones(6), np.zeros(4)].astype("float32")
    masked = model.evaluate(
        x,
        y,
        sample_weight={"t1": mask, "t2": np.ones(10, "float32")},
        return_dict=True,
        verbose=0,
    )
    y_nan = dict(y, t1=np.where(mask > 0, y["t1"], np.nan).astype("float32"))
    nan = model.evaluate(x, y_nan, return_dict=True, verbose=0)
    for key in ("t1_loss", "t1_accuracy", "t2_loss", "loss"):
        assert masked[key] == pytest.approx(nan[key], rel=1e-5)
