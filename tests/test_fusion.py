"""Fusion layers: values, `.keras` round-trips, and build-time misuse errors."""

from __future__ import annotations

import backend_cover
import keras
import numpy as np
import pytest
from layer_checks import as_numpy, check_layer

from keras_mtl import Task, build_model, fusion

pytestmark = pytest.mark.model

A = np.array([[1.0, -2.0], [0.5, 3.0]], "float32")
B = np.array([[3.0, 1.0], [0.5, -1.0]], "float32")

EXPECTED = {
    "concatenate": np.concatenate([A, B], axis=1),
    "sum": A + B,
    "mean": (A + B) / 2,
    "product": A * B,
    "abs_difference": np.abs(A - B),
    "pair": np.concatenate([A, B, np.abs(A - B), A * B], axis=1),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_values(name):
    np.testing.assert_allclose(as_numpy(fusion.get(name)([A, B])), EXPECTED[name])


def test_per_input_is_the_one_encoding():
    np.testing.assert_array_equal(as_numpy(fusion.get("per_input")([A])), A)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_layer_checks(name, tmp_path, rng):
    xa = rng.normal(size=(8, 2)).astype("float32")
    xb = rng.normal(size=(8, 2)).astype("float32")
    width = EXPECTED[name].shape[1]
    check_layer(fusion.get(name), [xa, xb], (8, width), tmp_path)


# Each fusion's own save, load and training step run on every backend in
# `test_layer_checks`; the model round trip is the same code for every
# fusion but `per_input` (tasks bound to inputs), so PyTorch and TensorFlow
# run those two.
@pytest.mark.parametrize(
    "name", backend_cover.cases(sorted(fusion.FUSIONS), ["concatenate", "per_input"])
)
def test_model_round_trip_through_keras_file(name, tmp_path, rng):
    two_inputs = name not in ("per_input",)
    tasks = [
        Task("first", inputs=["a"] if name == "per_input" else None),
        Task("second"),
    ]
    if name == "per_input":
        tasks = [Task("first", inputs=["a"]), Task("second", inputs=["b"])]
    model = build_model(
        {"a": (5, 3), "b": (5, 3)},
        keras.layers.GRU(4, name="shared"),
        tasks,
        fusion=name,
    )
    assert two_inputs == (model.tasks[1].inputs == ["a", "b"])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x = {k: rng.normal(size=(6, 5, 3)).astype("float32") for k in ("a", "b")}
    y = {t.name: rng.integers(0, 2, 6).astype("float32") for t in tasks}
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded).__name__ == "MultiTaskModel"
    assert loaded.tasks == model.tasks
    before, after = model.predict_tasks(x), loaded.predict_tasks(x)
    for task in model.task_names:
        np.testing.assert_array_equal(before[task], after[task])
    # Compiled state comes back too: same metrics, same evaluation.
    np.testing.assert_allclose(
        loaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6
    )


def test_per_input_with_two_inputs_fails_at_build_time():
    with pytest.raises(ValueError) as error:
        build_model(
            {"tweet_a": (4, 2), "tweet_b": (4, 2)},
            keras.layers.LSTM(3),
            [
                Task("a_negative", inputs=["tweet_a"]),
                Task("same_sentiment", inputs=["tweet_a", "tweet_b"]),
            ],
            fusion="per_input",
        )
    assert str(error.value) == (
        "Fusion 'per_input' lets each task's head read exactly one input, but task "
        "'same_sentiment' names 2: tweet_a, tweet_b."
    )


def test_sum_with_mismatched_widths_fails_at_build_time():
    with pytest.raises(ValueError) as error:
        build_model(
            {"a": (3,), "b": (3,)},
            {"a": keras.layers.Dense(4), "b": keras.layers.Dense(2)},
            [Task("t")],
            fusion="sum",
        )
    assert str(error.value) == (
        "Fusion 'sum' combines encodings elementwise, so the encodings it fuses need "
        "equal widths, but task 't' gets a: 4, b: 2."
    )


def test_one_input_task_reads_its_encoding_under_a_pair_fusion():
    # Auxiliary per-input tasks beside a pair task: the pair task gets
    # [a, b, |a-b|, a*b], a task reading one input gets that input's encoding.
    encoder = keras.layers.Dense(2, use_bias=False, kernel_initializer="ones")
    model = build_model(
        {"a": (3,), "b": (3,)},
        encoder,
        [Task("on_a", inputs=["a"]), Task("both")],
        fusion="pair",
    )
    head_a = model.get_layer("on_a").output_layer
    head_both = model.get_layer("both").output_layer
    assert head_a.kernel.shape == (2, 1)
    assert head_both.kernel.shape == (8, 1)
    assert len([x for x in model.layers if isinstance(x, fusion.PairFeatures)]) == 1


def test_per_input_pairing_needs_as_many_tasks_as_inputs():
    with pytest.raises(ValueError, match="there are 1 tasks and 2 inputs"):
        build_model(
            {"a": (3,), "b": (3,)},
            keras.layers.Dense(2),
            [Task("t")],
            fusion="per_input",
        )


def test_unknown_fusion_suggests_the_closest():
    with pytest.raises(ValueError, match='did you mean "concatenate"'):
        fusion.get("concatnate")


def test_unknown_input_suggests_the_closest():
    with pytest.raises(
        ValueError,
        match="Task 't' reads input 'tweet_c', but the "
        "model's inputs are tweet_a, tweet_b",
    ):
        build_model(
            {"tweet_a": (3,), "tweet_b": (3,)},
            keras.layers.Dense(2),
            [Task("t", inputs=["tweet_c"])],
        )


def test_tasks_reading_the_same_inputs_share_one_fusion_node():
    model = build_model(
        {"a": (3,), "b": (3,)}, keras.layers.Dense(2), [Task("t1"), Task("t2")]
    )
    fusion_layer = next(
        layer for layer in model.layers if isinstance(layer, fusion.Fusion)
    )
    assert len(fusion_layer._inbound_nodes) == 1
