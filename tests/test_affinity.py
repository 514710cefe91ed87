"""Task affinity: the lookahead and cosine matrices equal their definitions
computed by hand, group selection, and the `mtl affinity` command."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from keras_mtl import Task, build_model
from keras_mtl.analysis import select_groups, task_affinity
from keras_mtl.analysis.affinity import measure
from keras_mtl.analysis.grouping import grouping_from_text

pytestmark = pytest.mark.model

W = np.array([[0.5, -0.2], [0.1, 0.4], [-0.3, 0.2]], "float32")
HEADS = {"t0": [1.0, 0.5], "t1": [0.8, 0.7], "t2": [-0.6, 0.9]}


def _linear_model(optimizer, head_weights=HEADS):
    heads = {
        name: keras.layers.Dense(
            1,
            use_bias=False,
            kernel_initializer=keras.initializers.Constant(
                np.array(h, "float32").reshape(2, 1)
            ),
        )
        for name, h in head_weights.items()
    }
    encoder = keras.layers.Dense(
        2, use_bias=False, kernel_initializer=keras.initializers.Constant(W)
    )
    model = build_model(
        {"x": (3,)},
        encoder,
        [Task(n, "regression") for n in head_weights],
        heads=heads,
    )
    model.compile(optimizer=optimizer)
    return model


def _by_hand(x, y, lr):
    """Lookahead and cosine of SGD steps on the shared W, in NumPy."""
    x = x.astype(np.float64)
    w = W.astype(np.float64)
    heads = {k: np.array(v) for k, v in HEADS.items()}

    def loss(w_, task):
        return np.mean((x @ w_ @ heads[task] - y[task]) ** 2)

    def grad(task):
        r = x @ w @ heads[task] - y[task]
        return 2 * x.T @ r[:, None] @ heads[task][None, :] / len(x)

    names = list(HEADS)
    g = {t: grad(t) for t in names}
    look = np.array(
        [[1 - loss(w - lr * g[i], j) / loss(w, j) for j in names] for i in names]
    )
    flat = np.stack([g[t].ravel() for t in names])
    norms = np.linalg.norm(flat, axis=1)
    return look, flat @ flat.T / np.outer(norms, norms)


def test_measure_equals_the_definition_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = {
        "t0": (x[:, 0] - x[:, 1]).astype("float32"),
        "t1": (x[:, 0] + 0.2 * rng.normal(size=64)).astype("float32"),
        "t2": rng.normal(size=64).astype("float32"),
    }
    model = _linear_model(keras.optimizers.SGD(0.05))
    before = [
        v.numpy() if hasattr(v, "numpy") else np.asarray(v) for v in model.get_weights()
    ]
    look, cos, valid = measure(model, {"x": x}, y)
    expected_look, expected_cos = _by_hand(x, y, 0.05)
    assert valid.all()
    np.testing.assert_allclose(look, expected_look, rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(cos, expected_cos, rtol=1e-4, atol=1e-6)
    # The step is undone: weights and optimizer state are as they were.
    for a, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0


def test_unlabelled_tasks_are_not_measured():
    x = np.random.default_rng(1).normal(size=(16, 3)).astype("float32")
    y = {"t0": x[:, 0], "t1": np.full(16, np.nan, "float32"), "t2": x[:, 1]}
    _, _, valid = measure(_linear_model("sgd"), {"x": x}, y)
    assert not valid[1].any() and not valid[:, 1].any() and valid[0, 2]


def test_affinity_during_training_finds_the_related_tasks(tmp_path):
    """Twin tasks (same labels, same head) and a task of noise: the twins'
    gradients agree at every step, so each helps the other exactly as much
    as itself, and they are grouped."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 3)).astype("float32")
    target = (x[:, 0] - x[:, 1]).astype("float32")
    y = {"t0": target, "t1": target, "t2": rng.normal(size=512).astype("float32")}
    twins = {"t0": [1.0, 0.5], "t1": [1.0, 0.5], "t2": [-0.6, 0.9]}
    model = _linear_model(keras.optimizers.SGD(0.05), twins)
    affinity = task_affinity(
        model, {"x": x}, y, every=4, epochs=2, batch_size=32, verbose=0
    )
    assert affinity.measurements.min() == 8  # 2 epochs of 16 steps, every 4th
    z = affinity.lookahead
    np.testing.assert_allclose(affinity.cosine[0, 1], 1.0, rtol=1e-5)
    np.testing.assert_allclose(z[0, 1], z[0, 0], rtol=1e-4)
    assert z[0, 1] > 0 and z[0, 1] > abs(z[0, 2]) and z[1, 0] > abs(z[1, 2])
    assert np.all(np.diag(z) > 0)  # a step on a task lowers its own loss
    grouping = affinity.group(budget=2)
    assert ["t0", "t1"] in grouping.groups
    assert grouping.assignment["t0"] == grouping.assignment["t1"]
    assert "t0" in affinity.format()
    assert affinity.plot(tmp_path / "affinity.png")
    assert (tmp_path / "affinity.png").read_bytes()[:4] == b"\x89PNG"
    json.dumps(affinity.to_dict())


def test_select_groups_is_the_exhaustive_optimum():
    z = np.array(
        [
            [0.0, 0.4, -0.2, 0.1],
            [0.3, 0.0, -0.1, -0.3],
            [-0.2, -0.1, 0.0, 0.5],
            [0.0, -0.2, 0.6, 0.0],
        ]
    )
    names = ["a", "b", "c", "d"]
    best = select_groups(z, names, budget=2)
    assert sorted(map(sorted, best.groups)) == [["a", "b"], ["c", "d"]]
    assert best.score == pytest.approx(0.3 + 0.4 + 0.6 + 0.5)
    one = select_groups(z, names, budget=1)
    assert one.groups == [["a", "b", "c", "d"]]
    assert one.score == pytest.approx(np.sum(z.sum(axis=0) / 3))
    # Every task alone scores 0, below any grouping with gains.
    assert select_groups(-np.abs(z), names, budget=4).score == 0.0


def test_grouping_text_errors():
    with pytest.raises(ValueError, match="name 'x', which is not a task"):
        grouping_from_text("a,x;b", ["a", "b"])
    with pytest.raises(ValueError, match="leave out task 'b'"):
        grouping_from_text("a", ["a", "b"])
