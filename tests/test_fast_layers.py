"""Max pooling and attention in train steps: the backend's own where it has
them (JAX), the same outputs and gradients as Keras's."""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import pytest
from layer_checks import lowered_train_step

from keras_mtl import Task, build_model
from keras_mtl.models import model as model_module

on_jax = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="only the JAX backend has its own max pool and attention",
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


def _fast_then_keras(build, balancer, monkeypatch):
    """(fast, model): a fresh model, compiled, trained with the backend's
    layers, then one trained with Keras's own."""
    kwargs = {} if balancer is None else {"balancer": balancer}
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(
                model_module, "fast_layers", lambda m: contextlib.nullcontext()
            )
        model = build()
        model.compile(optimizer=keras.optimizers.SGD(0.3), **kwargs)
        yield fast, model


@pytest.mark.model
@pytest.mark.parametrize("balancer", [None, "upgrad"])
def test_pooled_model_trains_as_with_keras_pooling(balancer, rng, monkeypatch):
    """Training a Conv2D/MaxPooling2D trunk (ReLU zeros tie in the pooling
    windows) gives the weights it gives with Keras's own pooling; on JAX the
    compiled step then has no select-and-scatter (the fast pooling ran)."""
    x = {"image": rng.normal(size=(32, 9, 9, 2)).astype("float32")}
    y = {"a": rng.integers(0, 2, 32).astype("float32"), "b": rng.integers(0, 3, 32)}
    trained = []
    for fast, model in _fast_then_keras(_pooled_model, balancer, monkeypatch):
        if keras.backend.backend() == "jax":
            text = lowered_train_step(model, x, y).as_text()
            assert ("select_and_scatter" in text) is not fast
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        trained.append(model.get_weights())
    for a, b in zip(*trained, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(trained[0][0], _pooled_model().get_weights()[0])


def _reference_attention(q, k, v, scale):
    import jax
    import jax.numpy as jnp

    scores = jnp.einsum("bthd,bshd->bhts", q * scale, k)
    return jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(scores, axis=-1), v)


@on_jax
@pytest.mark.parametrize(
    "shapes",
    [
        ((6, 9, 3, 4), (6, 11, 3, 4), 4),  # sources != targets
        ((5, 7, 2, 4), (5, 7, 2, 4), 6),  # value width != key width
        ((3, 1, 1, 2), (3, 1, 1, 2), 2),  # one position
    ],
)
@pytest.mark.parametrize("chunk_bytes", [1 << 22, 800, 1])
def test_attention_equals_keras(shapes, chunk_bytes, rng, monkeypatch):
    """Outputs and gradients of every input equal Keras's attention (or,
    where Keras's JAX attention refuses a value width unlike the key's,
    softmax attention written out) to float32 rounding: in one chunk, in
    uneven chunks, one sample a chunk; and under `vmap` (the per-task
    passes on accelerators)."""
    import jax
    import jax.numpy as jnp

    from keras_mtl.backend import jax as backend

    monkeypatch.setattr(backend, "ATTENTION_CHUNK_BYTES", chunk_bytes)
    (qs, ks, dv), scale = shapes, 0.37
    chunks = []
    split = backend._chunks
    monkeypatch.setattr(
        backend, "_chunks", lambda *a: chunks.append(split(*a)) or chunks[-1]
    )
    q = jnp.asarray(rng.normal(size=qs).astype("float32"))
    k = jnp.asarray(rng.normal(size=ks).astype("float32"))
    v = jnp.asarray(rng.normal(size=(*ks[:3], dv)).astype("float32"))
    if dv == qs[-1]:

        def theirs(*a):
            return keras.ops.dot_product_attention(*a, scale=scale)

        np.testing.assert_allclose(
            theirs(q, k, v), _reference_attention(q, k, v, scale), atol=1e-6
        )
    else:

        def theirs(*a):
            return _reference_attention(*a, scale)

    def ours(*a):
        return backend.dot_product_attention(*a, scale)

    want = theirs(q, k, v)
    np.testing.assert_allclose(ours(q, k, v), want, rtol=1e-5, atol=1e-6)
    sizes = [part.stop - part.start for part in chunks[-1]]
    per_sample = qs[2] * qs[1] * ks[1] * 4  # bytes of scores
    expected = min(qs[0], max(1, chunk_bytes // per_sample))
    assert sizes[0] == expected and sum(sizes) == qs[0]
    if chunk_bytes == 800 and qs[0] == 5:  # 392 bytes a sample: uneven chunks
        assert sizes == [2, 2, 1]
    cot = jnp.asarray(rng.normal(size=(3, *want.shape)).astype("float32"))
    expected = jax.vmap(lambda c: jax.vjp(theirs, q, k, v)[1](c))(cot)
    got = jax.vmap(lambda c: jax.vjp(ours, q, k, v)[1](c))(cot)
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        if i == 2 or ks[1] > 1:  # one source: the softmax is constant
            assert float(jnp.max(jnp.abs(b))) > 1e-3


def _attention_model(dropout=0.0):
    from keras_mtl.encoders import TransformerEncoder

    keras.utils.set_random_seed(5)
    encoder = TransformerEncoder(
        8, heads=2, ff_dim=16, max_length=12, dropout=dropout, embedding_dim=4
    )
    tasks = [Task("a"), Task("b", "multiclass", num_classes=3)]
    text = keras.Input((12,), dtype="uint8", name="text")
    return build_model({"text": text}, encoder, tasks)


@on_jax
@pytest.mark.model
@pytest.mark.parametrize("balancer", [None, "upgrad"])
def test_attention_model_trains_as_with_keras_attention(balancer, rng, monkeypatch):
    """A Transformer trains to the weights it reaches with Keras's own
    attention, with the backend's attention called while the step is
    traced; with attention dropout (which Keras applies to the scores) the
    step keeps Keras's."""
    from keras_mtl.backend import jax as backend

    x = {"text": rng.integers(1, 256, (24, 12)).astype("uint8")}
    y = {"a": rng.integers(0, 2, 24).astype("float32"), "b": rng.integers(0, 3, 24)}
    calls = []
    attend = backend.dot_product_attention

    def counted(*args):
        calls.append(args[0].shape)
        return attend(*args)

    monkeypatch.setattr(backend, "dot_product_attention", counted)
    trained = []
    for fast, model in _fast_then_keras(_attention_model, balancer, monkeypatch):
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        trained.append(model.get_weights())
        assert bool(calls) is fast
        calls.clear()
    for a, b in zip(*trained, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert not np.allclose(trained[0][0], _attention_model().get_weights()[0])
    monkeypatch.undo()
    monkeypatch.setattr(backend, "dot_product_attention", counted)
    model = _attention_model(dropout=0.1)
    model.compile(
        optimizer="sgd", **({} if balancer is None else {"balancer": balancer})
    )
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not calls


@on_jax
def test_attention_subclass_keeps_its_own():
    """A subclass of MultiHeadAttention with its own `_compute_attention`
    keeps it; Keras's own layer attends through the backend's."""
    from keras_mtl.models.calls import fast_layers

    class Biased(keras.layers.MultiHeadAttention):
        def _compute_attention(self, *args, **kwargs):
            return super()._compute_attention(*args, **kwargs)

    inputs = keras.Input((6, 4))
    plain = keras.layers.MultiHeadAttention(2, 2)
    biased = Biased(2, 2)
    outputs = biased(plain(inputs, inputs), inputs)
    model = keras.Model(inputs, outputs)
    with fast_layers(model):
        assert "_compute_attention" in plain.__dict__
        assert "_compute_attention" not in biased.__dict__
    assert "_compute_attention" not in plain.__dict__
