"""Sharing architectures: shapes, `.keras` round-trips, training, gates."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from layer_checks import as_numpy

from keras_mtl import Task, architectures, build_model

pytestmark = pytest.mark.model

CASES = {
    "shared_bottom": {"units": [8]},
    "cross_stitch": {"units": [8, 6]},
    "mmoe": {"num_experts": 3, "expert_units": [6]},
    "cgc": {"num_shared_experts": 2, "num_task_experts": 1, "expert_units": [6]},
    "ple": {"num_levels": 2, "expert_units": [6]},
    "dselect_k": {"num_experts": 4, "k": 2, "expert_units": [6], "entropy": 0.01},
    "mtan": {"units": [8, 6]},
}


def _model(name, tasks=("a", "b"), **kwargs):
    arch = architectures.get(
        name, num_tasks=len(tasks), **{**CASES.get(name, {}), **kwargs}
    )
    return build_model(
        {"x": (10,)},
        keras.layers.Identity(),
        [Task(t) for t in tasks],
        architecture=arch,
    )


def _data(rng, n=256):
    x = rng.normal(size=(n, 10)).astype("float32")
    y = {
        "a": (x[:, 0] * x[:, 1] > 0).astype("float32"),
        "b": (x[:, 5] + x[:, 6] > 0).astype("float32"),
    }
    return x, y


@pytest.mark.parametrize("name", sorted(CASES))
def test_shapes_round_trip_and_training(name, rng, tmp_path):
    model = _model(name)
    x, y = _data(rng)
    p = model.predict_tasks(x)
    assert p["a"].shape == (256, 1) and p["b"].shape == (256, 1)
    arch = next(
        layer for layer in model.layers if isinstance(layer, architectures.Architecture)
    )
    assert type(arch).from_config(arch.get_config()).get_config() == arch.get_config()
    model.compile(optimizer=keras.optimizers.Adam(0.02))
    first = model.evaluate(x, y, return_dict=True, verbose=0)["loss"]
    model.fit(x, y, batch_size=64, epochs=15, verbose=0)
    assert model.evaluate(x, y, return_dict=True, verbose=0)["loss"] < first - 0.1
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    for task, values in model.predict_tasks(x).items():
        np.testing.assert_allclose(
            loaded.predict_tasks(x)[task], values, rtol=1e-6, atol=1e-6
        )


def test_architectures_work_with_balancers(rng):
    model = _model("mmoe", tasks=("a", "b"))
    model.compile(optimizer="adam", balancer="upgrad")
    x, y = _data(rng)
    history = model.fit(x, y, batch_size=64, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all() and "weight/a" in history


@pytest.mark.parametrize("name", ["mmoe", "cgc", "dselect_k"])
def test_gates_sum_to_one(name, rng):
    arch = architectures.get(name, num_tasks=3, **CASES[name])
    x = rng.normal(size=(7, 10)).astype("float32")
    arch(x)
    for gate in arch.gates(x):
        gate = as_numpy(gate)
        assert np.all(gate >= 0)
        np.testing.assert_allclose(gate.sum(axis=-1), 1.0, rtol=1e-5)


def test_dselect_k_reaches_k_experts_when_switches_saturate():
    d = architectures.DSelectK(1, num_experts=8, k=2, expert_units=[3], gamma=1.0)
    x = np.ones((1, 4), "float32")
    d(x)
    switches = d.switches[0]
    w = np.zeros((4, 2 * 3), "float32")
    switches.set_weights([w, np.array([5, -5, 5, -5, 5, 5], "float32")])
    gate = as_numpy(d.gates(x)[0])[0]
    assert np.count_nonzero(gate > 1e-6) == 2  # experts 0b101 = 5 and 0b110 = 6
    assert gate[5] > 0 and gate[6] > 0


def test_ple_with_one_level_is_cgc(rng):
    x = rng.normal(size=(9, 10)).astype("float32")
    cgc = architectures.CGC(
        2, num_shared_experts=2, num_task_experts=2, expert_units=[5, 4]
    )
    ple = architectures.PLE(
        2, num_levels=1, num_shared_experts=2, num_task_experts=2, expert_units=[5, 4]
    )
    cgc(x)
    ple(x)
    assert [w.shape for w in ple.weights] == [w.shape for w in cgc.weights]
    ple.set_weights(cgc.get_weights())
    for a, b in zip(cgc(x), ple(x), strict=True):
        np.testing.assert_allclose(as_numpy(a), as_numpy(b), rtol=1e-6)


def test_mmoe_gates_specialise_on_tasks_needing_different_experts(rng):
    """Task a reads features 0-4 only, task b features 5-9 only; with four
    experts the two gates end up weighting the experts differently."""
    keras.utils.set_random_seed(4)
    x = rng.normal(size=(2048, 10)).astype("float32")
    y = {
        "a": (np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] > 0).astype("float32"),
        "b": (np.cos(2 * x[:, 7]) - x[:, 8] * x[:, 9] > 0).astype("float32"),
    }
    arch = architectures.MMoE(2, num_experts=4, expert_units=[16])
    model = build_model(
        {"x": (10,)}, keras.layers.Identity(), [Task("a"), Task("b")], architecture=arch
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.fit(x, y, batch_size=128, epochs=30, verbose=0)
    ga, gb = (as_numpy(g).mean(axis=0) for g in arch.gates(x))
    distance = 0.5 * np.abs(ga - gb).sum()  # total variation
    assert distance > 0.2, (ga, gb)


def test_esmm(rng):
    keras.utils.set_random_seed(0)
    x = rng.normal(size=(1024, 10)).astype("float32")
    click = (x[:, 0] > 0).astype("float32")
    convert = click * (x[:, 1] > 0.5)
    model = build_model(
        {"x": (10,)},
        keras.layers.Identity(),
        [Task("click"), Task("click_and_convert")],
        architecture=architectures.ESMM(2, units=[8]),
    )
    model.compile(optimizer=keras.optimizers.Adam(0.02))
    model.fit(
        x,
        {"click": click, "click_and_convert": convert},
        epochs=20,
        batch_size=128,
        verbose=0,
    )
    p = model.predict_tasks(x)
    assert np.all(p["click_and_convert"] <= p["click"] + 1e-7)
    clicked = click > 0
    accuracy = ((p["click"][:, 0] > 0.5) == clicked).mean()
    assert accuracy > 0.9


def test_errors():
    with pytest.raises(ValueError, match="ESMM models two chained binary tasks"):
        architectures.ESMM(3)
    with pytest.raises(ValueError, match="tasks read different inputs"):
        build_model(
            {"x": (3,), "z": (3,)},
            keras.layers.Dense(2),
            [Task("a", inputs=["x"]), Task("b")],
            architecture="mmoe",
        )
    with pytest.raises(ValueError, match="was made for 3 tasks, but the model has 2"):
        build_model(
            {"x": (3,)},
            keras.layers.Dense(2),
            [Task("a"), Task("b")],
            architecture=architectures.MMoE(3),
        )
    with pytest.raises(ValueError, match="task 'b' must be binary"):
        build_model(
            {"x": (3,)},
            keras.layers.Dense(2),
            [Task("a"), Task("b", "regression")],
            architecture="esmm",
        )
    with pytest.raises(ValueError, match="Unknown architecture 'mmo'"):
        architectures.get("mmo", num_tasks=2)
