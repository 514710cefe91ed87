"""Balancers inside training, on the backend KERAS_BACKEND names."""

from __future__ import annotations

import dataclasses

import backend_cover
import keras
import numpy as np
import pytest
from backend_cover import methods
from layer_checks import as_numpy, lowered_train_step

from keras_mtl import MultiTaskModel, Task, balancers, build_model
from keras_mtl.balancers.base import GramianWeighting

pytestmark = pytest.mark.model

ALL = sorted(balancers.BALANCERS)
GRADIENT = sorted(n for n, c in balancers.BALANCERS.items() if c.level != "loss")
PARAMS = {"fixed": {"weights": [1.0, 2.0, 0.5]}}


def _model(tasks=("a", "b", "c"), hidden=6):
    return build_model(
        {"x": (5,)},
        keras.layers.Dense(hidden, activation="tanh", name="shared"),
        [Task(t) for t in tasks],
    )


def _data(rng, n=64, tasks=("a", "b", "c")):
    x = rng.normal(size=(n, 5)).astype("float32")
    y = {t: (x[:, i] > 0).astype("float32") for i, t in enumerate(tasks)}
    return x, y


@pytest.mark.parametrize("name", methods(ALL))
def test_every_balancer_trains(name, rng):
    model = _model()
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        balancer=balancers.get(name, **PARAMS.get(name, {})),
    )
    x, y = _data(rng)
    before = model.evaluate(x, y, return_dict=True, verbose=0)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history
    after = model.evaluate(x, y, return_dict=True, verbose=0)
    assert np.all(np.isfinite(history["loss"]))
    for task in ("a", "b", "c"):
        assert np.isfinite(history[f"weight/{task}"]).all()
    assert "weight/a" not in after  # balancer metrics belong to training
    if name not in ("graddrop", "rlw"):
        assert after["loss"] < before["loss"], (before["loss"], after["loss"])
    assert int(as_numpy(model.balancer_state.step)) == 12
    assert int(as_numpy(model.balancer_state.epoch)) == 2


REPRESENTATION = [
    n for n in GRADIENT if not balancers.BALANCERS[n].not_at_representation
]


@pytest.mark.parametrize("name", methods(REPRESENTATION))
def test_representation_level(name, rng):
    model = _model()
    model.compile(
        optimizer="adam", balancer=name, balance_mode="representation", cosine=True
    )
    x, y = _data(rng)
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    assert -1.0 <= history["cosine/a/b"][-1] <= 1.0


@pytest.mark.parametrize("name", sorted(set(GRADIENT) - set(REPRESENTATION)))
def test_representation_level_refused_with_the_reason(name):
    with pytest.raises(
        ValueError,
        match="is not defined at the representation level: "
        ".*different batch of samples",
    ):
        _model().compile(balancer=name, balance_mode="representation")


@dataclasses.dataclass(frozen=True)
class _Ones(GramianWeighting):
    """Weights 1: the balanced step must then equal plain Keras on the sum."""

    key = "ones"

    def update(self, inputs, state, ctx):
        return np.ones(len(inputs.gramian)), state


def _plain_twin(model):
    twin = keras.Model(
        model.input, [model.get_layer(t).output for t in model.task_names]
    )
    twin.set_weights(model.get_weights())
    return twin


@pytest.mark.parametrize("balancer", ["ew", _Ones()], ids=["ew", "gradient-step"])
@pytest.mark.parametrize("mode", ["parameter", "representation"])
def test_equal_weights_match_plain_keras_after_20_steps(balancer, mode, rng):
    if balancer == "ew" and mode == "representation":
        pytest.skip("representation mode is for gradient methods")
    keras.utils.set_random_seed(1)
    model = _model()
    twin = keras.models.clone_model(_plain_twin(model))
    twin.set_weights(model.get_weights())
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="binary_crossentropy",
        balancer=balancer,
        balance_mode=mode,
    )
    twin.compile(optimizer=keras.optimizers.SGD(0.1), loss=["binary_crossentropy"] * 3)
    x, y = _data(rng, n=320)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    twin.fit(
        x,
        [y[t] for t in model.task_names],
        batch_size=16,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    ours = [w for w in model.get_weights()]
    theirs = twin.get_weights()
    assert len([w for w in ours if w.ndim]) >= len(theirs)
    for a, b in zip(ours[: len(theirs)], theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_update_every_reuses_weights(rng):
    model = _model()
    model.compile(optimizer="adam", balancer="nash_mtl", update_every=3)
    x, y = _data(rng, n=16)
    seen = []
    for _ in range(4):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        seen.append(as_numpy(model.balancer_state.last_weights).copy())
    np.testing.assert_array_equal(seen[1], seen[0])
    np.testing.assert_array_equal(seen[2], seen[0])
    assert not np.array_equal(seen[3], seen[0])


@backend_cover.once("the phased steps are JAX's (other backends branch in one step)")
def test_phased_steps_equal_one_step_with_a_conditional(rng):
    """With `update_every`, JAX runs a compiled step per phase (recompute,
    reuse), chosen on the host; the training run is the one a single step
    with a conditional gives."""
    x, y = _data(rng, n=64)
    runs = []
    for phased in (True, False):
        keras.utils.set_random_seed(1)
        model = _model()
        model.compile(optimizer="adam", balancer="upgrad", update_every=3)
        model._balancing.phased = phased
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        runs.append(model)
    phased, single = runs
    from keras_mtl.training import phased_train_function

    assert phased_train_function(phased) is not None
    assert phased_train_function(single) is None
    assert int(as_numpy(phased.balancer_state.step)) == 8
    for a, b in zip(phased.get_weights(), single.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.model
def test_update_every_through_an_embedding(rng):
    """`update_every` on an encoder with an embedding, whose gradient
    TensorFlow's tape gives as sparse slices in one kind of step and dense
    in the other: both steps train, and the weights are reused between
    recomputations."""
    from keras_mtl.encoders import TransformerEncoder

    keras.utils.set_random_seed(0)
    inputs = {"text": keras.Input((6,), dtype="int32", name="text")}
    encoder = TransformerEncoder(8, heads=2, ff_dim=8, max_length=6, vocab_size=20)
    model = build_model(inputs, encoder, [Task("a"), Task("b")])
    model.compile(optimizer="sgd", balancer="upgrad", update_every=2)
    x = {"text": rng.integers(1, 20, (32, 6)).astype("int32")}
    y = {t: rng.integers(0, 2, 32).astype("float32") for t in "ab"}
    before = [w.copy() for w in model.get_weights()]
    seen = []
    for _ in range(3):
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        seen.append(as_numpy(model.balancer_state.last_gramian).copy())
    np.testing.assert_array_equal(seen[1], seen[0])
    assert not np.array_equal(seen[2], seen[0])
    table = as_numpy(model.get_layer(encoder.name).symbol_layer.embeddings)
    start = before[[w.shape for w in before].index(table.shape)]
    assert not np.allclose(table, start)


def test_state_is_saved_and_restored(rng, tmp_path):
    model = _model()
    model.compile(
        optimizer="adam",
        balancer=balancers.get("gradvac", beta=0.3, seed=4),
        cosine=True,
    )
    x, y = _data(rng)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    targets = as_numpy(model.balancer_state.state_variables[0])
    assert np.any(targets != 0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, MultiTaskModel)
    assert loaded._balancing.balancer == balancers.get("gradvac", beta=0.3, seed=4)
    np.testing.assert_array_equal(
        as_numpy(loaded.balancer_state.state_variables[0]), targets
    )
    assert int(as_numpy(loaded.balancer_state.step)) == 8
    # Training resumes identically from the saved state.
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_uw_parameters_are_trained_and_saved(rng, tmp_path):
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(0.1), balancer="uw")
    x, y = _data(rng)
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    state = model.balancer_state.state()
    params = state.log_variance
    assert not np.allclose(params, -0.5)
    # The learned values are the method's state: its weights show them.
    learned = balancers.UW().weights(np.ones(3), state)
    np.testing.assert_allclose(learned, 0.5 * np.exp(-params))
    assert not np.allclose(learned, balancers.UW().weights(np.ones(3)))
    model.save(tmp_path / "uw.keras")
    loaded = keras.models.load_model(tmp_path / "uw.keras")
    np.testing.assert_array_equal(loaded.balancer_state.state().log_variance, params)


def test_a_task_without_labels_gets_no_weight(rng):
    model = _model()
    model.compile(optimizer="adam", balancer="mgda")
    x, y = _data(rng, n=32)
    y["c"][:] = np.nan
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0).history
    assert history["weight/c"] == [0.0]
    assert np.isfinite(history["loss"]).all()
    assert history["weight/a"][0] + history["weight/b"][0] == pytest.approx(
        1.0, abs=1e-5
    )


def test_recompiling_replaces_the_balancer(rng):
    model = _model()
    model.compile(balancer="uw")
    model.compile(balancer="pcgrad")
    paths = [v.path for v in model.variables if v.path.startswith("balancer_state")]
    assert len(paths) == len(set(paths))
    assert not any(p.endswith("params") for p in paths)
    model.compile()
    assert not any(v.path.startswith("balancer_state") for v in model.variables)


def test_errors():
    with pytest.raises(
        ValueError,
        match="Balancer 'uw' weighs losses and computes no task "
        "gradients: balance_mode='representation' does not apply to it.",
    ):
        _model().compile(balancer="uw", balance_mode="representation")
    separate = build_model(
        {"x": (3,), "z": (3,)},
        {"x": keras.layers.Dense(2), "z": keras.layers.Dense(2)},
        [Task("a", inputs=["x"]), Task("b", inputs=["z"])],
    )
    with pytest.raises(ValueError, match="no variable of this model is shared"):
        separate.compile(balancer="pcgrad")
    with pytest.raises(
        ValueError,
        match="update_every applies to methods that weigh tasks "
        "from the Gramian; 'graddrop' returns an update vector.",
    ):
        _model().compile(balancer="graddrop", update_every=2)
    with pytest.raises(ValueError, match="give balancer=... too"):
        _model().compile(cosine=True)


@pytest.mark.parametrize(
    ("symbols", "mode", "skip"),
    backend_cover.cases(
        [
            (symbols, mode, skip)
            for symbols in ("onehot", "embedding", None)
            for mode, skip in (
                ("parameter", False),
                ("representation", False),
                ("parameter", True),
            )
        ],
        # Each input kind and each mode once on PyTorch and TensorFlow.
        [
            ("onehot", "parameter", True),
            ("embedding", "representation", False),
            (None, "parameter", False),
        ],
    ),
)
def test_lstm_kernel_path_equals_autodiff(symbols, mode, skip, rng):
    """The LSTM's per-task gradient kernel gives autodiff's training run
    (with `skip_padding`, on rows with leading padding)."""
    from keras_mtl.encoders import LSTMEncoder

    def make():
        keras.utils.set_random_seed(3)
        shape = (7,) if symbols else (7, 3)
        dtype = "int32" if symbols else "float32"
        inputs = {n: keras.Input(shape, dtype=dtype, name=n) for n in ("p", "q")}
        return build_model(
            inputs,
            LSTMEncoder(
                5,
                symbols=symbols,
                embedding_dim=4,
                vocab_size=20,
                skip_padding=skip,
            ),
            [Task("a"), Task("b", inputs=["q"]), Task("c", hidden=[3])],
        )

    if symbols:
        x = {n: rng.integers(0, 20, (48, 7)).astype("int32") for n in ("p", "q")}
    else:
        x = {n: rng.normal(size=(48, 7, 3)).astype("float32") for n in ("p", "q")}
    if skip:
        for a in x.values():
            a[np.arange(7) < rng.integers(0, 7, (48, 1))] = 0  # leading padding
    y = {t: rng.integers(0, 2, 48).astype("float32") for t in "abc"}
    fast, slow = make(), make()
    for model in (fast, slow):
        model.compile(
            optimizer=keras.optimizers.SGD(0.5), balancer="upgrad", balance_mode=mode
        )
    assert fast._balancing.split.kernel is not None
    slow._balancing.split.kernel = None  # force autodiff per task
    for model in (fast, slow):
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(fast.get_weights(), slow.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(
        as_numpy(fast.balancer_state.last_weights),
        as_numpy(slow.balancer_state.last_weights),
        rtol=1e-3,
    )


@pytest.mark.model
@pytest.mark.parametrize(
    ("layer", "kwargs", "features", "ruled", "one_hot"),
    backend_cover.cases(
        [
            ("LSTM", {}, 3, True, False),
            ("LSTM", {}, 40, True, False),
            ("LSTM", {}, 3, True, True),
            ("LSTM", {}, 40, True, True),
            ("LSTM", {"use_bias": False}, 3, True, False),
            ("LSTM", {"go_backwards": True}, 3, False, False),
            ("LSTM", {"activation": "relu"}, 3, False, False),
            ("LSTM", {"recurrent_dropout": 0.1}, 3, False, False),
            ("GRU", {}, 3, True, False),
            ("GRU", {}, 3, True, True),
            ("GRU", {"use_bias": False}, 3, True, False),
            ("GRU", {"reset_after": False}, 3, False, False),
            ("GRU", {"go_backwards": True}, 3, False, False),
        ],
        # The rules' numbers on each backend (both ways of summing the LSTM
        # input kernel's gradient, over one-hot and other input); which
        # layers get one is backend-neutral.
        [
            ("LSTM", {}, 3, True, False),
            ("LSTM", {}, 40, True, False),
            ("LSTM", {}, 40, True, True),
            ("GRU", {}, 3, True, False),
            ("GRU", {}, 3, True, True),
        ],
    ),
)
def test_keras_recurrent_rules_equal_autodiff(
    layer, kwargs, features, ruled, one_hot, rng
):
    """The seed's own layer, `keras.layers.LSTM`, and `keras.layers.GRU` get
    their rules when they are plain (same training run as autodiff); any
    other takes autodiff. With 3 tasks of 5 units, 3 input features sum the
    LSTM input kernel's gradient step by step, 40 in one product after the
    recursion; one-hot input (the seed's) reads and sums rows by id."""

    def make():
        keras.utils.set_random_seed(3)
        inputs = {n: keras.Input((7, features), name=n) for n in ("p", "q")}
        return build_model(
            inputs,
            getattr(keras.layers, layer)(5, **kwargs),
            [Task("a"), Task("b", inputs=["q"]), Task("c", hidden=[3])],
        )

    if one_hot:
        eye = np.eye(features, dtype="float32")
        x = {n: eye[rng.integers(0, features, (48, 7))] for n in "pq"}
    else:
        x = {n: rng.normal(size=(48, 7, features)).astype("float32") for n in "pq"}
    y = {t: rng.integers(0, 2, 48).astype("float32") for t in "abc"}
    fast, slow = make(), make()
    for model in (fast, slow):
        model.compile(optimizer=keras.optimizers.SGD(0.5), balancer="upgrad")
    assert (fast._balancing.split.kernel is not None) == ruled
    if not ruled:
        return
    slow._balancing.split.kernel = None  # force autodiff per task
    for model in (fast, slow):
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(fast.get_weights(), slow.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    assert not np.allclose(fast.get_weights()[0], make().get_weights()[0])


@pytest.mark.model
@pytest.mark.parametrize("layer", ["LSTM", "GRU"])
@pytest.mark.parametrize("features", [3, 40])
def test_recurrent_rules_read_one_hot_input_by_id(layer, features, rng):
    """Over exactly one-hot input the rules read the input kernel's rows by
    id instead of multiplying: a NaN in a row no step reads stays out of
    the output and of every gradient, and that row's gradient is zero.
    Any other input (one value 0.5, or two 1s in a step) takes the product,
    which the NaN reaches."""
    from keras_mtl.models import rules

    cell_layer = getattr(keras.layers, layer)(5)
    cell_layer.build((None, 7, features))
    rule = rules.rule_for(cell_layer)
    assert rule is not None
    kernel = np.array(cell_layer.cell.kernel)
    kernel[features - 1] = np.nan
    cell_layer.cell.kernel.assign(kernel)
    eye = np.eye(features, dtype="float32")
    x = eye[rng.integers(0, features - 1, (4, 7))]
    cotangents = keras.ops.convert_to_tensor(
        rng.normal(size=(2, 4, 5)).astype("float32")
    )

    def run(values):
        h, residual = rule.forward_saving(keras.ops.convert_to_tensor(values))
        grads = rule.task_gradients(values, residual, cotangents)
        return as_numpy(h), {id(v): as_numpy(g) for v, g in grads}

    h, grads = run(x)
    assert np.isfinite(h).all()
    for g in grads.values():
        assert np.isfinite(g).all()
    d_kernel = grads[id(cell_layer.cell.kernel)]
    assert not d_kernel[:, features - 1].any()
    assert np.abs(d_kernel[:, : features - 1]).sum() > 0
    half = x.copy()
    half[1, 2] = 0.0
    half[1, 2, 0] = 0.5
    doubled = x.copy()
    doubled[1, 2] = 0.0
    doubled[1, 2, :2] = 1.0
    for values in (half, doubled):
        h, _ = run(values)
        assert np.isnan(h).all()


def test_weights_and_cosines_reach_callbacks(rng, tmp_path):
    model = _model()
    model.compile(optimizer="adam", balancer="pcgrad", cosine=True)
    x, y = _data(rng)
    path = tmp_path / "log.csv"
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=2,
        verbose=0,
        callbacks=[keras.callbacks.CSVLogger(str(path))],
    )
    header = path.read_text().splitlines()[0].split(",")
    assert {
        "weight/a",
        "weight/b",
        "weight/c",
        "cosine/a/b",
        "cosine/a/c",
        "cosine/b/c",
    } <= set(header)


def test_weights_and_cosines_are_logged_from_one_variable(rng):
    """The logged weights are the step's and the cosines its Gramian's;
    all of them take one metric variable (each costs every step Python)."""
    tasks = ("a", "b", "c")
    model = _model(tasks)
    model.compile(optimizer="adam", balancer="pcgrad", cosine=True)
    plain = _model(tasks)
    plain.compile(optimizer="adam")
    x, y = _data(rng)
    logs = model.train_on_batch(x, y, return_dict=True)
    plain.train_on_batch(x, y)
    assert len(model.metrics_variables) == len(plain.metrics_variables) + 1
    weights = as_numpy(model.balancer_state.last_weights)
    g = as_numpy(model.balancer_state.last_gramian).astype("float64")
    assert np.all(np.diagonal(g) > 0)
    for i, a in enumerate(tasks):
        assert logs[f"weight/{a}"] == pytest.approx(float(weights[i]), rel=1e-6)
        for j in range(i + 1, len(tasks)):
            cos = g[i, j] / np.sqrt(g[i, i] * g[j, j])
            assert logs[f"cosine/{a}/{tasks[j]}"] == pytest.approx(cos, abs=1e-5)


def test_epoch_logs_keep_the_weights_through_validation(rng):
    """The epoch's logs show the last step's weights, also when validation
    runs after it (PyTorch once showed the metrics' reset zeros there)."""
    model = _model()
    model.compile(optimizer="adam", balancer="upgrad")
    x, y = _data(rng)
    history = model.fit(
        x, y, batch_size=16, epochs=1, verbose=0, validation_data=(x, y)
    ).history
    last = as_numpy(model.balancer_state.last_weights)
    for i, task in enumerate(("a", "b", "c")):
        assert history[f"weight/{task}"][0] == pytest.approx(float(last[i]))
        assert history[f"weight/{task}"][0] > 0


def _dense_trunks(kind):
    """Encoders with plain Dense layers: every branch of the Dense rule."""
    if kind in ("mlp-narrow", "mlp-wide", "mlp-dropout"):
        from keras_mtl.encoders import MLPEncoder

        width = 40 if kind == "mlp-wide" else 5
        drop = 0.3 if kind == "mlp-dropout" else 0.0
        return {"x": (width,)}, MLPEncoder((16, 8), dropout=drop), (width,)
    if kind == "conv":
        trunk = keras.Sequential(
            [
                keras.layers.Conv1D(4, 3, activation="relu"),
                keras.layers.Flatten(),
                keras.layers.Dense(6, activation="tanh"),
            ]
        )
        return {"x": (7, 3)}, trunk, (7, 3)
    if kind == "embedding":
        # One Embedding applied to two inputs: ids (1-10) repeat within and
        # across calls; the table has more rows than the batch has ids.
        trunk = keras.Sequential(
            [
                keras.layers.Embedding(400, 4),
                keras.layers.GlobalAveragePooling1D(),
                keras.layers.Dense(5, activation="tanh"),
            ]
        )
        return {"p": (7,), "q": (7,)}, trunk, (7,)
    if kind.startswith("ngrams"):
        # The n-gram bag (its own rule) over bytes, with n-gram dropout and
        # families: texts of 5-letter words, ids repeat within and across
        # texts; a table with more rows than the batch has n-grams, or fewer.
        from keras_mtl.encoders import NgramEncoder

        buckets = 97 if kind == "ngrams-few" else 4099
        encoder = NgramEncoder(
            dim=6, buckets=buckets, ngram_dropout=0.2, pooling="families", dropout=0.0
        )
        if kind == "ngrams-pair":  # two texts of two lengths, one encoder
            return {"p": (30,), "q": (18,)}, encoder, None
        return {"x": (30,)}, encoder, (30,)
    if kind == "transformer":
        # Embeddings (bytes, positions), EinsumDense (attention), Dense and
        # LayerNormalization (no rule: autodiff rows) in one encoder.
        from keras_mtl.encoders import TransformerEncoder

        encoder = TransformerEncoder(
            8, heads=2, ff_dim=8, max_length=6, symbols="embedding", embedding_dim=4
        )
        return {"x": (6,)}, encoder, (6,)
    # One Dense over a sequence, applied to two inputs (rows joined).
    trunk = keras.Sequential(
        [keras.layers.Dense(5, use_bias=False), keras.layers.GlobalAveragePooling1D()]
    )
    return {"p": (7, 6), "q": (7, 6)}, trunk, (7, 6)


DENSE_KINDS = [
    "mlp-narrow",
    "mlp-wide",
    "mlp-dropout",
    "conv",
    "shared-sequence",
    "embedding",
    "transformer",
    "ngrams",
    "ngrams-few",
    "ngrams-pair",
]
ID_KINDS = {"embedding": 11, "transformer": 256}


def _dense_model(kind):
    keras.utils.set_random_seed(5)
    inputs, encoder, _ = _dense_trunks(kind)
    tasks = [Task("a"), Task("b", hidden=[3]), Task("c")]
    if kind in ("shared-sequence", "embedding", "ngrams-pair"):
        tasks = [Task("a", inputs=["p"]), Task("b"), Task("c", inputs=["q"])]
    if kind in ID_KINDS or kind.startswith("ngrams"):
        inputs = {
            name: keras.Input(shape, dtype="int32", name=name)
            for name, shape in inputs.items()
        }
    return build_model(inputs, encoder, tasks)


def _dense_data(kind, rng, n=48):
    inputs, _, shape = _dense_trunks(kind)
    if kind.startswith("ngrams"):  # words of 5 letters from 8
        x = {name: rng.integers(97, 105, (n, *inputs[name])) for name in inputs}
        for text in x.values():
            text[:, 5::6] = 32
    elif kind in ID_KINDS:
        x = {name: rng.integers(1, ID_KINDS[kind], (n, *shape)) for name in inputs}
    else:
        x = {name: rng.normal(size=(n, *shape)).astype("float32") for name in inputs}
    y = {t: rng.integers(0, 2, n).astype("float32") for t in "abc"}
    return x, y


@backend_cover.once("layer rules need static shapes; other backends take autodiff")
@pytest.mark.parametrize("kind", DENSE_KINDS)
def test_dense_rule_rows_equal_autodiff(kind, rng):
    """The Dense rule's rows, Gramian, weighted update and single pass are
    autodiff's numbers, with and without the kernel products (R < F)."""
    from keras_mtl import backend as mtl_backend
    from keras_mtl.training.algebra import combine, gramian
    from keras_mtl.training.rows import AutodiffRows

    model = _dense_model(kind)
    model.compile(optimizer="sgd", balancer="upgrad")
    split = model._balancing.split
    kinds = {type(rule).__name__ for rule in split.layer_rules}
    expected = {"embedding": {"KerasEmbedding", "KerasDense"}}.get(kind, {"KerasDense"})
    if kind == "transformer":
        expected = {"KerasEmbedding", "KerasEinsumDense", "KerasDense"}
    if kind.startswith("ngrams"):
        expected = {"EmbeddingBag"}
    assert kinds == expected
    x, _ = _dense_data(kind, rng, n=16)
    enc = split.encoder
    args = (
        mtl_backend.module(),
        enc,
        [v.value for v in enc.trainable_variables],
        [v.value for v in enc.non_trainable_variables],
        x,
    )
    ruled, plain = AutodiffRows(*args, split.layer_rules), AutodiffRows(*args)
    jz = [rng.normal(size=(3, *z.shape)).astype("float32") for z in plain.z]
    weights = np.array([0.2, 1.5, 0.7], "float32")
    expected_rows = plain.jacobian(jz)
    g, update = ruled.gramian_rows(jz)
    close = {"rtol": 2e-4, "atol": 2e-5}
    np.testing.assert_allclose(as_numpy(g), as_numpy(gramian(expected_rows)), **close)
    pairs = [
        (ruled.jacobian(jz), expected_rows),
        (update(weights), combine(weights, expected_rows)),
        (ruled.through([j[1] for j in jz]), plain.through([j[1] for j in jz])),
    ]
    for got, expected in pairs:
        assert len(got) == len(enc.trainable_variables)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(as_numpy(a), as_numpy(b), **close)


@backend_cover.once("layer rules need static shapes; other backends take autodiff")
@pytest.mark.parametrize("kind", ["transformer", "shared-sequence"])
def test_dense_rule_rows_equal_autodiff_vectorised(kind, rng, monkeypatch):
    """The same numbers on an accelerator's path: the tasks' passes as one
    vectorised pass (`vmap`), each task's shares reduced inside it."""
    import jax

    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    test_dense_rule_rows_equal_autodiff(kind, rng)


@backend_cover.once("layer rules need static shapes; other backends take autodiff")
def test_a_tied_table_gets_no_rule(rng):
    """A layer that holds an Embedding's table as its own weight and reads
    it outside the Embedding's calls leaves that Embedding to autodiff, and
    training equals autodiff's (its Dense keeps its rule)."""
    from keras import ops

    class Tied(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.embedding = keras.layers.Embedding(11, 4)
            self.dense = keras.layers.Dense(3)

        def build(self, shape):
            self.embedding.build(shape)
            self.dense.build((None, 4))
            self.table = self.embedding.embeddings

        def call(self, ids):
            h = ops.mean(self.embedding(ids), axis=1)
            tied = ops.matmul(h, ops.transpose(self.table))[:, :5]
            return ops.concatenate([tied, self.dense(h)], axis=-1)

    def model():
        keras.utils.set_random_seed(5)
        inputs = {"x": keras.Input((7,), dtype="int32", name="x")}
        return build_model(inputs, Tied(), [Task("a"), Task("b"), Task("c")])

    fast, slow = model(), model()
    for m in (fast, slow):
        m.compile(optimizer=keras.optimizers.SGD(0.5), balancer="upgrad")
    rules = fast._balancing.split.layer_rules
    assert [type(rule).__name__ for rule in rules] == ["KerasDense"]
    slow._balancing.split.layer_rules = None
    x = {"x": rng.integers(1, 11, (48, 7))}
    y = {t: rng.integers(0, 2, 48).astype("float32") for t in "abc"}
    for m in (fast, slow):
        m.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(fast.get_weights(), slow.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


@backend_cover.once("layer rules need static shapes; other backends take autodiff")
@pytest.mark.parametrize(
    ("kind", "method"),
    [
        ("mlp-dropout", "upgrad"),
        ("conv", "pcgrad"),
        ("shared-sequence", "mgda"),
        ("mlp-wide", {"name": "upgrad", "update_every": 2}),
        ("embedding", "pcgrad"),
        ("transformer", "upgrad"),
        ("ngrams", "upgrad"),
        ("ngrams-pair", "mgda"),
    ],
)
def test_dense_rule_trains_as_autodiff(kind, method, rng):
    """Training with the rule equals training with autodiff rows."""
    fast, slow = _dense_model(kind), _dense_model(kind)
    for model in (fast, slow):
        model.compile(optimizer=keras.optimizers.SGD(0.5), balancer=method)
    slow._balancing.split.layer_rules = None  # force autodiff per task
    x, y = _dense_data(kind, rng)
    for model in (fast, slow):
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(fast.get_weights(), slow.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    assert not np.allclose(fast.get_weights()[0], _dense_model(kind).get_weights()[0])


@backend_cover.once("task-by-task head gradients are JAX's on the CPU")
@pytest.mark.parametrize(
    ("method", "mode"), [("pcgrad", "parameter"), ("upgrad", "representation")]
)
def test_head_rows_task_by_task_equal_the_pullbacks(method, mode, rng, monkeypatch):
    """Each task's gradient taken from its own loss alone (JAX on the CPU)
    trains as pulling back the stacked losses with one-hot cotangents:
    hidden head layers, a task weight, classes, labels missing from some
    rows."""
    from keras_mtl.backend import jax as jax_backend

    tasks = [
        Task("a", weight=2.0),
        Task("b", "multiclass", num_classes=3, hidden=[4]),
        Task("c", hidden=[3]),
    ]
    x = rng.normal(size=(48, 5)).astype("float32")
    y = {
        "a": (x[:, 0] > 0).astype("float32"),
        "b": rng.integers(0, 3, 48),
        "c": np.where(rng.random(48) < 0.3, np.nan, x[:, 1] > 0).astype("float32"),
    }
    trained = []
    for by_task in (True, False):
        if not by_task:
            monkeypatch.delattr(jax_backend, "gradients")
        keras.utils.set_random_seed(2)
        model = build_model(
            {"x": (5,)}, keras.layers.Dense(6, activation="tanh"), tasks
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.2), balancer=method, balance_mode=mode
        )
        kernels = [v for v in model.trainable_variables if len(v.shape) == 2]
        start = [as_numpy(v) for v in kernels]
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        trained.append(model.get_weights())
    for a, b in zip(*trained, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert len(kernels) == 6  # every head's kernels and the encoder's moved
    for before, var in zip(start, kernels, strict=True):
        assert not np.allclose(before, as_numpy(var))


@backend_cover.once("Z's rows factored are JAX's on the CPU")
@pytest.mark.parametrize(
    ("method", "every"), [("upgrad", 1), ("mgda", 1), ("pcgrad", 2)]
)
def test_factored_rows_of_z_train_as_the_rows(method, every, rng, monkeypatch):
    """At the representation level, Z's rows taken as D_t W^T (cotangents of
    the heads' first Dense layers and their kernels) train as the rows
    themselves: single-unit and hidden heads, classes, a task weight,
    labels missing from some rows, weights kept between updates; and the
    factored path ran."""
    from keras_mtl.training import step as step_module

    tasks = [
        Task("a", weight=2.0),
        Task("b", "multiclass", num_classes=3, hidden=[2]),
        Task("c", hidden=[2]),
        Task("d", "regression"),
    ]
    x = rng.normal(size=(48, 5)).astype("float32")
    y = {
        "a": (x[:, 0] > 0).astype("float32"),
        "b": rng.integers(0, 3, 48),
        "c": np.where(rng.random(48) < 0.3, np.nan, x[:, 0] < 0).astype("float32"),
        "d": x[:, 1] - x[:, 2],
    }
    factoring, read_once = step_module._factoring, step_module._read_once
    used = []

    def spied(*args):
        readers = factoring(*args)
        used.append(readers is not None)
        return readers

    def spied_read_once(*args):
        used.append(read_once(*args))
        return used[-1]

    monkeypatch.setattr(step_module, "_read_once", spied_read_once)

    trained = []
    for factored in (True, False):
        monkeypatch.setattr(
            step_module, "_factoring", spied if factored else lambda *a: None
        )
        keras.utils.set_random_seed(4)
        model = build_model(
            {"x": (5,)}, keras.layers.Dense(48, activation="tanh"), tasks
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.2),
            balancer=method,
            balance_mode="representation",
            update_every=every,
        )
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        trained.append(model.get_weights())
        weights = as_numpy(model.balancer_state.last_weights)
    assert used and all(used)
    assert np.ptp(weights) > 1e-3  # the method weighs the tasks unequally
    for a, b in zip(*trained, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_readers_of_z_only_where_dense_layers_alone_read_it():
    """Z's readers are the heads' first Dense layers (through a
    concatenation of Z alone); a second representation, a layer between Z
    and the Dense layers, or a regularised kernel leaves the rows as they
    are."""
    from keras_mtl import presets
    from keras_mtl.layers.task_head import TaskHead
    from keras_mtl.models.sharing import split_model

    tasks = [Task("a"), Task("b", hidden=[3])]
    model = build_model({"x": (5,)}, keras.layers.Dense(8), tasks)
    readers = split_model(model).readers
    assert sorted(r.layer.name for r in readers) == ["hidden_0", "output"]
    assert split_model(presets.seed_case1(tasks=["a", "b"], length=8)).readers is None

    inputs = keras.Input((5,))
    z = keras.layers.Dense(8)(inputs)
    plain = keras.layers.Dense(1, name="plain")(z)
    dropped = keras.layers.Dense(1, name="dropped")(keras.layers.Dropout(0.1)(z))
    assert split_model(keras.Model(inputs, [plain, dropped])).readers is None
    kept = keras.layers.Dense(1, name="kept")(z)
    readers = split_model(keras.Model(inputs, [plain, kept])).readers
    assert sorted(r.layer.name for r in readers) == ["kept", "plain"]
    ruled = keras.layers.Dense(1, kernel_regularizer="l2")(z)
    assert split_model(keras.Model(inputs, [plain, ruled])).readers is None
    through_op = keras.layers.Dense(1, name="through_op")(keras.ops.relu(z))
    assert split_model(keras.Model(inputs, [plain, through_op])).readers is None

    class Normed(TaskHead):
        def call(self, features):
            return super().call(keras.ops.tanh(features))

    head = Normed(Task("n"))(z)
    assert split_model(keras.Model(inputs, [plain, head])).readers is None


@backend_cover.once("the per-task passes run unrolled on JAX's CPU")
def test_per_task_passes_hold_one_tasks_buffers(rng):
    """A Conv2D trunk's 8-task UPGrad step holds about what equal
    weighting's holds (the passes run one after the other, each freeing its
    cotangents before the next): at most 1.5x, where side by side every
    task's cotangents of the first convolution (0.5 MiB each) were alive at
    once."""
    names = [f"t{i}" for i in range(8)]
    x = {"image": rng.normal(size=(32, 16, 16, 1)).astype("float32")}
    y = {n: rng.integers(0, 5, 32).astype("int32") for n in names}
    temps = {}
    for balancer in (None, "upgrad"):
        trunk = keras.Sequential(
            [
                keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.Flatten(),
                keras.layers.Dense(16, activation="relu"),
            ]
        )
        tasks = [Task(n, "multiclass", num_classes=5) for n in names]
        model = build_model({"image": (16, 16, 1)}, trunk, tasks)
        model.compile(optimizer="sgd", **({"balancer": balancer} if balancer else {}))
        compiled = lowered_train_step(model, x, y).compile()
        temps[balancer] = compiled.memory_analysis().temp_size_in_bytes / 2**20
    assert temps["upgrad"] <= 1.5 * temps[None], temps


@backend_cover.once("layer rules need static shapes; other backends take autodiff")
def test_each_tasks_pass_reduces_its_own_cotangents(rng):
    """An 8-task UPGrad step of a small Transformer holds at most twice
    equal weighting's working memory: each task's pass forms its own
    products X^T D_t of the projections and feed-forward layers (R = 768
    rows each), so no task's cotangents of them outlive its pass. Stacking
    every task's cotangents held 3.7x EW's."""
    from keras_mtl.encoders import TransformerEncoder

    names = [f"t{i}" for i in range(8)]
    x = {"text": rng.integers(1, 256, (16, 48)).astype("uint8")}
    y = {n: rng.integers(0, 2, 16).astype("float32") for n in names}
    temps = {}
    for balancer in (None, "upgrad"):
        encoder = TransformerEncoder(32, heads=2, ff_dim=64, max_length=48)
        inputs = {"text": keras.Input((48,), dtype="uint8", name="text")}
        model = build_model(inputs, encoder, [Task(n) for n in names])
        model.compile(optimizer="sgd", **({"balancer": balancer} if balancer else {}))
        compiled = lowered_train_step(model, x, y).compile()
        temps[balancer] = compiled.memory_analysis().temp_size_in_bytes
    assert temps["upgrad"] <= 2.0 * temps[None], temps


@backend_cover.once("the per-task passes run unrolled on JAX's CPU")
def test_representation_rows_hold_no_more_than_equal_weighting(rng):
    """A 10-task UPGrad step at the representation level of an MLP holds no
    more working memory than equal weighting's: each task's pass yields the
    gradients of its own head alone (no task's zeros of the other nine
    heads), and Z's rows stay factored (one product over every task's
    cotangents). Stacking each task's zeros held twice EW's."""
    from keras_mtl.encoders import MLPEncoder

    names = [f"t{i}" for i in range(10)]
    x = {"features": rng.normal(size=(64, 128)).astype("float32")}
    y = {n: rng.integers(0, 2, 64).astype("float32") for n in names}
    temps = {}
    for balancer in (None, "upgrad"):
        model = build_model(
            {"features": (128,)}, MLPEncoder((256, 128)), [Task(n) for n in names]
        )
        extra = {"balancer": balancer, "balance_mode": "representation"}
        model.compile(optimizer="rmsprop", **(extra if balancer else {}))
        compiled = lowered_train_step(model, x, y).compile()
        temps[balancer] = compiled.memory_analysis().temp_size_in_bytes
    assert temps["upgrad"] <= temps[None], temps


@pytest.mark.parametrize("vectorised", [False, True])
def test_batched_pullbacks_reduce_each_pass(vectorised, rng, monkeypatch):
    """`pullback.batched(cotangents, reduce=)` on every backend: each row's
    backward pass through `reduce`, stacked, equals the passes one by one
    reduced and stacked by hand; on JAX also as one vectorised pass (what
    an accelerator runs)."""
    if vectorised:
        if keras.backend.backend() != "jax":
            pytest.skip("only JAX vectorises the passes (on accelerators)")
        import jax

        monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    from keras import ops

    from keras_mtl import backend as mtl_backend

    prims = mtl_backend.module()
    w = ops.convert_to_tensor(rng.normal(size=(3, 4)).astype("float32"))
    x = ops.convert_to_tensor(rng.normal(size=(5, 3)).astype("float32"))

    def forward(primals):
        (weight,) = primals
        return ops.tanh(ops.matmul(x, weight)), None

    _, _, pullback = prims.vjp(forward, [w])
    cots = rng.normal(size=(3, 5, 4)).astype("float32")

    def reduce(out):
        (grad,) = out
        return ops.sum(grad, axis=0), ops.sum(grad * grad)

    sums, squares = pullback.batched(ops.convert_to_tensor(cots), reduce=reduce)
    assert tuple(sums.shape) == (3, 4) and tuple(squares.shape) == (3,)
    for i in range(3):
        (grad,) = pullback(ops.convert_to_tensor(cots[i]))
        grad = as_numpy(grad)
        np.testing.assert_allclose(as_numpy(sums)[i], grad.sum(0), rtol=1e-5)
        np.testing.assert_allclose(as_numpy(squares)[i], (grad**2).sum(), rtol=1e-5)
        assert np.abs(grad).sum() > 0


def test_a_pass_after_another_gets_its_value_exactly():
    """`_after` adds an exact zero, whatever the finished pass holds (NaN,
    infinities, sums that overflow): one task's NaN never reaches the next
    task's cotangent."""
    if keras.backend.backend() != "jax":
        pytest.skip("the JAX backend's unrolled passes")
    import jax.numpy as jnp

    from keras_mtl.backend import jax as backend

    value = {"a": jnp.asarray([1.5, -0.0, 3e38, -7.0]), "ids": jnp.asarray([1, 2])}
    for done in (
        [jnp.asarray([jnp.nan, 1.0])],
        [jnp.asarray([jnp.inf]), jnp.asarray([-jnp.inf])],
        [jnp.full((4,), 3e38)],
        [jnp.asarray([2.0]), jnp.asarray([5, 6])],
        [],
    ):
        out = backend._after(value, done)
        np.testing.assert_array_equal(out["a"], value["a"])
        np.testing.assert_array_equal(np.signbit(out["a"]), np.signbit(value["a"]))
        assert np.all(np.isfinite(np.asarray(out["a"])))
        np.testing.assert_array_equal(out["ids"], value["ids"])
        assert out["ids"].dtype == value["ids"].dtype
