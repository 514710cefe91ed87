"""MultiTaskModel is a keras.Model: compile, fit, evaluate, predict, callbacks,
save/load and plot_model all work, with per-task losses and metrics."""

from __future__ import annotations

import shutil

import keras
import numpy as np
import pytest
from layer_checks import as_numpy

from keras_mtl import Model, MultiTaskModel, Task, build_model, encoders

pytestmark = pytest.mark.model


def _tasks():
    return [
        Task("binary", inputs=["a"]),
        Task("classes", "multiclass", num_classes=3),
        Task("labels", "multilabel", num_classes=2),
        Task("value", "regression", hidden=[4]),
    ]


def _model():
    return build_model(
        {"a": (6,), "b": (6,)},
        keras.layers.Dense(5, activation="tanh", name="enc"),
        _tasks(),
    )


def _data(rng, n=32):
    x = {k: rng.normal(size=(n, 6)).astype("float32") for k in ("a", "b")}
    y = {
        "binary": (x["a"][:, 0] > 0).astype("float32"),
        "classes": rng.integers(0, 3, n),
        "labels": (x["b"][:, :2] > 0).astype("float32"),
        "value": x["a"][:, 1:2] + x["b"][:, 2:3],
    }
    return x, y


def test_tasks_and_outputs():
    model = _model()
    assert isinstance(model, keras.Model)
    assert model.task_names == ["binary", "classes", "labels", "value"]
    assert [t.units for t in model.tasks] == [1, 3, 2, 1]
    assert model.tasks[0].inputs == ["a"]
    assert model.tasks[1].inputs == ["a", "b"]


def test_default_losses_and_metrics_per_kind(rng):
    model = _model()
    model.compile(optimizer="adam")
    x, y = _data(rng)
    logs = model.evaluate(x, y, return_dict=True, verbose=0)
    assert set(logs) == {
        "loss",
        "binary_loss",
        "classes_loss",
        "labels_loss",
        "value_loss",
        "binary_accuracy",
        "binary_auc",
        "classes_accuracy",
        "labels_accuracy",
        "labels_auc",
        "value_mae",
    }
    total = sum(logs[f"{t}_loss"] for t in model.task_names)
    assert logs["loss"] == pytest.approx(total, rel=1e-5)


def test_fit_lowers_every_task_loss(rng):
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(0.03))
    x, y = _data(rng, 128)
    first = model.evaluate(x, y, return_dict=True, verbose=0)
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    last = model.evaluate(x, y, return_dict=True, verbose=0)
    for task in model.task_names:
        assert last[f"{task}_loss"] < first[f"{task}_loss"]
    assert last["binary_accuracy"] > 0.85


def test_every_batch_call_starts_from_reset_metrics(rng):
    """`train_on_batch`/`test_on_batch` reset the metrics every call (the
    second reset onwards restores saved values): each call reports its own
    batch only, as a fresh model's first call does."""
    model = _model()
    model.compile(optimizer="sgd", balancer="upgrad")
    (x1, y1), (x2, y2) = _data(rng, 16), _data(rng, 16)
    for _ in range(3):
        model.train_on_batch(x1, y1)
        model.test_on_batch(x1, y1)
    got = model.test_on_batch(x2, y2, return_dict=True)
    fresh = _model()
    fresh.compile(optimizer="sgd", balancer="upgrad")
    fresh.set_weights(model.get_weights())
    want = fresh.test_on_batch(x2, y2, return_dict=True)
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, err_msg=key)
    model.reset_metrics()
    for metric in model.metrics:
        for variable in metric.variables:
            assert not np.any(as_numpy(variable.value)), variable.path


def test_loss_weights_and_per_task_dicts(rng):
    model = _model()
    x, y = _data(rng)
    model.compile(
        loss={"value": "mae"},
        loss_weights={"binary": 2.0, "value": 0.5},
        metrics={"binary": ["accuracy"], "value": [keras.metrics.MeanSquaredError()]},
    )
    logs = model.evaluate(x, y, return_dict=True, verbose=0)
    assert set(logs) == {
        "loss",
        "binary_loss",
        "classes_loss",
        "labels_loss",
        "value_loss",
        "binary_accuracy",
        "value_mean_squared_error",
    }
    expected = (
        2.0 * logs["binary_loss"]
        + logs["classes_loss"]
        + logs["labels_loss"]
        + 0.5 * logs["value_loss"]
    )
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    p = model.predict_tasks(x)
    assert logs["value_loss"] == pytest.approx(
        np.abs(p["value"] - y["value"]).mean(), rel=1e-4
    )


def test_lists_follow_task_order(rng):
    model = _model()
    x, y = _data(rng)
    model.compile(loss_weights=[1.0, 0.0, 0.0, 0.0], metrics=[[], [], [], []])
    logs = model.evaluate(
        x, [y[t] for t in model.task_names], return_dict=True, verbose=0
    )
    assert logs["loss"] == pytest.approx(logs["binary_loss"], rel=1e-5)


def test_callbacks_history_and_early_stopping(rng, tmp_path):
    model = _model()
    model.compile(optimizer="adam")
    x, y = _data(rng)
    seen = []
    history = model.fit(
        x,
        y,
        validation_data=(x, y),
        epochs=3,
        verbose=0,
        callbacks=[
            keras.callbacks.EarlyStopping(monitor="val_binary_loss", patience=5),
            keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda e, logs: seen.append(logs)
            ),
        ],
    )
    assert len(history.history["val_binary_accuracy"]) == 3
    assert "val_classes_loss" in seen[-1]
    assert "binary_auc" in (tmp_path / "log.csv").read_text().splitlines()[0]


def test_monitoring_callbacks_in_auto_mode_know_a_task_metric_direction(rng):
    model = _model()
    model.compile(optimizer="adam")
    x, y = _data(rng)
    up = keras.callbacks.EarlyStopping(monitor="val_binary_accuracy", patience=9)
    down = keras.callbacks.ReduceLROnPlateau(monitor="binary_loss")
    model.fit(x, y, validation_data=(x, y), epochs=1, verbose=0, callbacks=[up, down])
    assert (up.mode, down.mode) == ("max", "min")
    assert up.monitor_op is keras.ops.greater and down.monitor_op is keras.ops.less


def test_save_and_load_keep_everything(rng, tmp_path):
    model = _model()
    model.compile(
        optimizer="adam", loss={"value": "huber"}, metrics={"binary": ["auc"]}
    )
    x, y = _data(rng)
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, MultiTaskModel)
    assert loaded.tasks == model.tasks
    # Saved as given, so the file resolves it for the backend that loads it.
    assert loaded.get_compile_config()["jit_compile"] == "auto"
    assert loaded.jit_compile == model.jit_compile
    for task, p in model.predict_tasks(x).items():
        np.testing.assert_array_equal(loaded.predict_tasks(x)[task], p)
    assert loaded.evaluate(x, y, return_dict=True, verbose=0) == pytest.approx(
        model.evaluate(x, y, return_dict=True, verbose=0)
    )
    # Optimizer state is restored: one more step gives the same weights.
    model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_plot_model(tmp_path):
    model = _model()
    dot = keras.utils.model_to_dot(model, show_shapes=True).to_string()
    assert "binary" in dot and "enc" in dot
    if not shutil.which("dot"):
        pytest.skip("Graphviz `dot` is not installed: PNG rendering not checked")
    keras.utils.plot_model(model, to_file=str(tmp_path / "m.png"))
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_inferred_tasks_from_a_hand_built_model():
    a = keras.Input((4,))
    h = keras.layers.Dense(3)(a)
    model = Model(
        a,
        [
            keras.layers.Dense(1, activation="sigmoid", name="yes")(h),
            keras.layers.Dense(3, activation="softmax", name="which")(h),
            keras.layers.Dense(2, activation="sigmoid", name="tags")(h),
            keras.layers.Dense(2, name="amount")(h),
        ],
    )
    assert [(t.name, t.kind, t.units) for t in model.tasks] == [
        ("yes", "binary", 1),
        ("which", "multiclass", 3),
        ("tags", "multilabel", 2),
        ("amount", "regression", 2),
    ]


def test_tasks_given_by_position_for_unnamed_outputs(rng):
    a = keras.Input((4,))
    outs = [keras.layers.Dense(1, activation="sigmoid")(a) for _ in range(2)]
    model = Model(a, outs, tasks=[Task("first"), Task("second", weight=0.0)])
    model.compile(metrics=["accuracy"])
    x = rng.normal(size=(8, 4)).astype("float32")
    logs = model.evaluate(
        x, {"first": np.ones(8), "second": np.zeros(8)}, return_dict=True, verbose=0
    )
    assert logs["loss"] == pytest.approx(logs["first_loss"], rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"loss": {"binry": "mse"}},
            "loss names 'binry', which is not a task of this "
            'model; tasks are binary, classes, labels, value (did you mean "binary"?).',
        ),
        ({"loss": ["mse"]}, "loss is a list of 1 entries but the model has 4 tasks"),
        (
            {"loss_weights": {"binary": -1}},
            "Task 'binary': loss weight must be a finite number >= 0, got -1.",
        ),
        (
            {"metrics": {"value": ["accuracy"]}},
            "Task 'value' is a regression task: "
            "metric 'accuracy' is undefined for it (use 'mae' or 'mse').",
        ),
        (
            {"metrics": {"classes": ["auc"]}},
            "Task 'classes' is a multiclass task: "
            "metric 'auc' is defined here for binary and multilabel tasks only.",
        ),
        ({"loss": "no_such_loss"}, "Task 'binary': unknown loss 'no_such_loss'."),
    ],
)
def test_compile_errors(kwargs, message):
    with pytest.raises(ValueError) as error:
        _model().compile(**kwargs)
    assert message in str(error.value)


def test_y_with_an_unknown_task_is_one_sentence(rng):
    model = _model()
    model.compile()
    x, y = _data(rng)
    with pytest.raises(ValueError, match="y names 'valeu', which is not a task"):
        model.evaluate(x, {**y, "valeu": y["value"]}, verbose=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"name": "t", "kind": "binari"},
            "Task 't': kind must be one of binary, "
            "multiclass, multilabel, regression, got 'binari' (did you mean \"binary\"?).",
        ),
        (
            {"name": "t", "kind": "multiclass"},
            "a multiclass task needs num_classes >= 2",
        ),
        ({"name": "a/b"}, "Task name must be a non-empty string without '/'"),
        ({"name": "t", "weight": -2}, "Task 't': weight must be >= 0, got -2."),
    ],
)
def test_task_errors(kwargs, message):
    with pytest.raises(ValueError) as error:
        Task(**kwargs)
    assert message in str(error.value)


def test_task_config_round_trip():
    task = Task(
        "t",
        "multilabel",
        num_classes=3,
        inputs=["a"],
        loss=keras.losses.BinaryCrossentropy(label_smoothing=0.1),
        metrics=["auc", keras.metrics.Precision()],
        weight=0.5,
        hidden=[8],
    )
    again = Task.from_config(task.get_config())
    assert again == task
    assert isinstance(again.loss, keras.losses.BinaryCrossentropy)
    assert again.loss.get_config()["label_smoothing"] == 0.1


def test_encoder_by_name_and_unknown_name():
    assert isinstance(encoders.get("gru", units=3), encoders.GRUEncoder)
    with pytest.raises(ValueError, match='did you mean "lstm"'):
        encoders.get("lstn")


def test_one_task_model_takes_a_plain_array(rng):
    model = build_model({"a": (3,)}, keras.layers.Dense(2), [Task("only")])
    model.compile(optimizer="sgd", metrics=["accuracy"])
    x = rng.normal(size=(8, 3)).astype("float32")
    logs = model.fit(x, np.ones(8), verbose=0).history
    assert np.isfinite(logs["only_loss"]).all()
    assert as_numpy(model(x)["only"]).shape == (8, 1)


def test_custom_heads(rng):
    head = keras.Sequential(
        [keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1, "sigmoid")],
        name="my_head",
    )
    model = build_model(
        {"a": (4,)}, keras.layers.Dense(2), [Task("t"), Task("u")], heads={"t": head}
    )
    assert model.task_names == ["t", "u"]
    assert model.get_layer("my_head") is head
    x = rng.normal(size=(5, 4)).astype("float32")
    assert model.predict_tasks(x)["t"].shape == (5, 1)
    with pytest.raises(
        ValueError,
        match="The head of task 't' outputs width 2, but "
        "a binary task with num_classes=None needs 1.",
    ):
        build_model(
            {"a": (4,)},
            keras.layers.Dense(2),
            [Task("t")],
            heads={"t": keras.layers.Dense(2)},
        )
    with pytest.raises(ValueError, match="heads names 'v', which is not a task"):
        build_model(
            {"a": (4,)},
            keras.layers.Dense(2),
            [Task("t")],
            heads={"v": keras.layers.Dense(1)},
        )
