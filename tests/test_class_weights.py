"""Per-task class weights in `fit`, and the training defaults."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_mtl import Task, build_model
from keras_mtl.tasks.class_weights import balanced, resolve
from keras_mtl.tasks.masking import task_loss, unreduced
from keras_mtl.training import defaults

pytestmark = pytest.mark.model


def test_balanced_is_scikit_learns_rule():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([0, 0, 0, 1, 2, 2, -1, 1, 0])
    kept = y[y >= 0]
    expected = compute_class_weight("balanced", classes=np.arange(3), y=kept)
    got = balanced(Task("t", "multiclass", 3), y)
    np.testing.assert_allclose(got, expected)
    assert balanced(Task("b"), np.array([1.0, 0.0, 0.0, 0.0, np.nan])) == [
        pytest.approx(4 / 6),
        pytest.approx(2.0),
    ]


def test_resolve_errors_name_the_task():
    tasks = [Task("hate"), Task("score", "regression")]
    with pytest.raises(ValueError, match=r"names task 'hat'.*did you mean \"hate\""):
        resolve(tasks, {"hat": "balanced"}, lambda n: None)
    with pytest.raises(ValueError, match="task 'score' is regression"):
        resolve(tasks, {"score": "balanced"}, lambda n: None)
    with pytest.raises(ValueError, match="lists 3 weights, but the task has 2"):
        resolve(tasks, {"hate": [1, 2, 3]}, lambda n: None)
    assert resolve(tasks, {"hate": {1: 4.0}}, lambda n: None) == {"hate": [1.0, 4.0]}
    # "balanced" covers the classification tasks only.
    assert set(resolve(tasks, "balanced", lambda n: np.array([0, 1]))) == {"hate"}


def test_weighted_loss_by_hand():
    task = Task("t", "multiclass", 3)
    y = np.array([0, 2, -1, 1], "int32")
    p = np.array(
        [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4], [0.2, 0.5, 0.3]], "float32"
    )
    loss, count = task_loss(
        task, unreduced("sparse_categorical_crossentropy"), y, p, None, [1.0, 3.0, 0.5]
    )
    expected = (-np.log(0.7) * 1.0 - np.log(0.8) * 0.5 - np.log(0.5) * 3.0) / 3
    assert float(count) == 3
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    binary = Task("b")
    loss, _ = task_loss(
        binary,
        unreduced("binary_crossentropy"),
        np.array([[1.0], [0.0], [np.nan]], "float32"),
        np.array([[0.9], [0.4], [0.5]], "float32"),
        None,
        [0.5, 2.0],
    )
    assert float(loss) == pytest.approx(
        (-np.log(0.9) * 2.0 - np.log(0.6) * 0.5) / 2, rel=1e-5
    )


def _skewed(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    # A rare class (about 8%) that the features only weakly announce.
    rare = (x[:, 0] + 0.8 * rng.normal(size=n) > 1.6).astype("float32")
    return x, rare


def _model():
    keras.utils.set_random_seed(0)
    return build_model(
        {"x": (4,)}, keras.layers.Dense(8), [Task("rare"), Task("other")]
    )


def test_balanced_weights_raise_the_rare_class_and_leave_evaluation_alone():
    x, rare = _skewed()
    y = {"rare": rare, "other": (x[:, 1] > 0).astype("float32")}
    plain, weighted = _model(), _model()
    for model in (plain, weighted):
        model.compile(optimizer=keras.optimizers.Adam(0.05))
    plain.fit(x, y, epochs=15, batch_size=100, verbose=0)
    weighted.fit(
        x, y, epochs=15, batch_size=100, verbose=0, class_weight={"rare": "balanced"}
    )
    p_plain = plain.predict_tasks(x)["rare"][:, 0]
    p_weighted = weighted.predict_tasks(x)["rare"][:, 0]
    recall = lambda p: ((p > 0.5) & (rare == 1)).sum() / rare.sum()  # noqa: E731
    assert recall(p_weighted) > recall(p_plain) + 0.2
    assert p_weighted.mean() > 2 * p_plain.mean()
    # Evaluation is unweighted: the same loss as computed by hand.
    logs = weighted.evaluate(x, y, verbose=0, return_dict=True)
    bce = -np.mean(rare * np.log(p_weighted) + (1 - rare) * np.log(1 - p_weighted))
    assert logs["rare_loss"] == pytest.approx(bce, rel=1e-3)


def test_defaults_optimizer_and_early_stopping():
    x, rare = _skewed(200)
    y = {"rare": rare, "other": (x[:, 1] > 0).astype("float32")}
    model = _model()
    model.compile()
    assert isinstance(model.optimizer.inner_optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(defaults.LEARNING_RATE)
    # Validation labels unrelated to the inputs: the validation loss stops
    # improving at once, so early stopping ends long before EPOCHS.
    rng = np.random.default_rng(1)
    val_y = {k: rng.integers(0, 2, 100).astype("float32") for k in y}
    history = model.fit(
        x, y, validation_data=(x[:100], val_y), batch_size=50, verbose=0
    )
    losses = history.history["val_loss"]
    assert len(losses) < defaults.EPOCHS
    best = int(np.argmin(losses))
    assert len(losses) == best + 1 + defaults.PATIENCE
    # The best epoch's weights are back.
    again = model.evaluate(x[:100], val_y, verbose=0, return_dict=True)["loss"]
    assert again == pytest.approx(losses[best], rel=1e-4)
    # Explicit epochs: exactly that many, no early stopping.
    model.compile()
    history = model.fit(x, y, validation_data=(x[:100], val_y), epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3
