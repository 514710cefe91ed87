"""Max pooling in train steps: the backend's own where it has one (JAX), the
same outputs and gradients as Keras's, ties included."""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import pytest

from keras_mtl import Task, build_model
from keras_mtl.models import model as model_module

on_jax = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="only the JAX backend has its own max pool"
)


@on_jax
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_equals_keras(dims, padding, data_format, ties, rng):
    """Outputs and gradients equal Keras's exactly, for odd sizes (padded
    or cropped), windows of 1-3, both layouts, and inputs with ties (the
    gradient goes to a window's first maximum, as Keras's does); and under
    `vmap` (the per-task passes on accelerators)."""
    for _ in range(3):
        sizes = tuple(int(s) for s in rng.integers(3, 8, dims))
        pool = tuple(int(p) for p in rng.integers(1, 4, dims))
        shape = (2, *sizes, 3) if data_format == "channels_last" else (2, 3, *sizes)
        if ties:
            x = rng.integers(-1, 2, shape).astype("float32")
        else:
            x = rng.normal(size=shape).astype("float32")
        _check_pool(x, pool, padding, data_format, rng)


def _check_pool(x, pool, padding, data_format, rng):
    import jax
    import jax.numpy as jnp

    from keras_mtl.backend import jax as backend

    def theirs(v):
        return keras.ops.max_pool(v, pool, pool, padding, data_format)

    def ours(v):
        return backend.max_pool(v, pool, padding, data_format)

    x = jnp.asarray(x)
    y = theirs(x)
    np.testing.assert_array_equal(ours(x), y)
    cot = jnp.asarray(rng.normal(size=(4, *y.shape)).astype("float32"))
    want = jax.vmap(lambda c: jax.vjp(theirs, x)[1](c)[0])(cot)
    got = jax.vmap(lambda c: jax.vjp(ours, x)[1](c)[0])(cot)
    np.testing.assert_array_equal(got, want)
    assert np.count_nonzero(np.asarray(got[0])) > 0


def _pooled_model():
    keras.utils.set_random_seed(3)
    trunk = keras.Sequential(
        [
            keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),  # 9 -> 4: a row and a column cropped
            keras.layers.Conv2D(5, 2, activation="relu"),
            keras.layers.MaxPooling2D(2, padding="same"),  # 3 -> 2: padded
            keras.layers.MaxPooling2D(1),
            keras.layers.Flatten(),
            keras.layers.Dense(6, activation="tanh"),
        ]
    )
    tasks = [Task("a"), Task("b", "multiclass", num_classes=3)]
    return build_model({"image": (9, 9, 2)}, trunk, tasks)


@pytest.mark.model
@pytest.mark.parametrize("balancer", [None, "upgrad"])
def test_pooled_model_trains_as_with_keras_pooling(balancer, rng, monkeypatch):
    """Training a Conv2D/MaxPooling2D trunk (ReLU zeros tie in the pooling
    windows) gives the weights it gives with Keras's own pooling; on JAX the
    compiled step then has no select-and-scatter (the fast pooling ran)."""
    x = {"image": rng.normal(size=(32, 9, 9, 2)).astype("float32")}
    y = {"a": rng.integers(0, 2, 32).astype("float32"), "b": rng.integers(0, 3, 32)}
    kwargs = {} if balancer is None else {"balancer": balancer}
    trained = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(
                model_module, "fast_pooling", lambda m: contextlib.nullcontext()
            )
        model = _pooled_model()
        model.compile(optimizer=keras.optimizers.SGD(0.3), **kwargs)
        if keras.backend.backend() == "jax":
            import jax

            model.optimizer.build(model.trainable_variables)
            state = model._get_jax_state(
                trainable_variables=True,
                non_trainable_variables=True,
                optimizer_variables=True,
                metrics_variables=True,
            )
            text = jax.jit(model.train_step).lower(state, (x, y)).as_text()
            assert ("select_and_scatter" in text) is not fast
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        trained.append(model.get_weights())
    for a, b in zip(*trained, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(trained[0][0], _pooled_model().get_weights()[0])
