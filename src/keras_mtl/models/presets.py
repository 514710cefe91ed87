"""The seed's two models, and the model that answers its question better."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_mtl.data.text import TWEET_BYTES
from keras_mtl.encoders.recurrent import LSTMEncoder
from keras_mtl.models.builder import build_model
from keras_mtl.models.model import MultiTaskModel
from keras_mtl.tasks.task import Task

#: The seed's inputs, and the demo's tasks on them.
INPUTS = ("tweet_a", "tweet_b")
TASKS = ("a_negative", "same_sentiment")


def _inputs(byte_ids: bool, length: int | None) -> dict[str, keras.KerasTensor]:
    if byte_ids:
        return {n: keras.Input((length,), dtype="uint8", name=n) for n in INPUTS}
    return {n: keras.Input((length, 256), name=n) for n in INPUTS}


def _encoder(byte_ids: bool, units: int, skip_padding: bool) -> keras.layers.Layer:
    if byte_ids or skip_padding:
        symbols = "onehot" if byte_ids else None
        return LSTMEncoder(
            units, symbols=symbols, skip_padding=skip_padding, name="shared_lstm"
        )
    return keras.layers.LSTM(units, name="shared_lstm")


def _seed(
    fusion: str,
    name: str,
    byte_ids: bool,
    tasks: Sequence[str],
    length: int | None,
    units: int,
    skip_padding: bool,
    encoder: keras.layers.Layer | None,
) -> MultiTaskModel:
    return build_model(
        _inputs(byte_ids, length),
        encoder or _encoder(byte_ids, units, skip_padding),
        [Task(task) for task in tasks],
        fusion=fusion,
        name=name,
    )


def seed_case1(
    byte_ids: bool = False,
    tasks: Sequence[str] = TASKS,
    length: int | None = TWEET_BYTES,
    units: int = 64,
    skip_padding: bool = False,
    encoder: keras.layers.Layer | None = None,
) -> MultiTaskModel:
    """The seed's Case 1: one shared LSTM(64), concatenation, two sigmoid heads.

    Inputs `tweet_a` and `tweet_b` of shape (280, 256) (or 280 byte ids with
    `byte_ids=True`: the same weights and predictions, one-hot in the
    graph); both heads read [h_a, h_b]. 82,434 parameters.

    Args:
        byte_ids: Take byte ids (uint8, see `keras_mtl.data.text.encode_bytes`).
        tasks: Names of the two tasks.
        length: Sequence length (the seed's 280); None takes any length,
            as length-bucketed batches need (`keras_mtl.data.BucketedBatches`).
        units: LSTM width (the seed's 64).
        skip_padding: Leading padding leaves the LSTM's state at zero
            (`LSTMEncoder`); for length-bucketed batches. Off: the seed's LSTM.
        encoder: A shared encoder to use instead of the LSTM (for example
            `keras_mtl.encoders.NgramEncoder()` over byte ids).

    Example:
    >>> seed_case1().count_params()
    82434
    """
    return _seed(
        "concatenate",
        "seed_case1",
        byte_ids,
        tasks,
        length,
        units,
        skip_padding,
        encoder,
    )


def seed_case2(
    byte_ids: bool = False,
    tasks: Sequence[str] = TASKS,
    length: int | None = TWEET_BYTES,
    units: int = 64,
    skip_padding: bool = False,
    encoder: keras.layers.Layer | None = None,
) -> MultiTaskModel:
    """The seed's Case 2: the shared LSTM, head 1 reads tweet a, head 2 tweet b.

    The heads share only the LSTM's weights. 82,306 parameters.

    Args:
        byte_ids: Take byte ids (see `seed_case1`).
        tasks: Names of the two tasks (the first reads tweet_a).
        length: Sequence length (None: any length).
        units: LSTM width.
        skip_padding: See `seed_case1`.
        encoder: See `seed_case1`.

    Example:
    >>> seed_case2().count_params()
    82306
    """
    return _seed(
        "per_input", "seed_case2", byte_ids, tasks, length, units, skip_padding, encoder
    )


def pair_model(
    byte_ids: bool = True,
    tasks: Sequence[str] = TASKS,
    length: int | None = TWEET_BYTES,
    units: int = 64,
    hidden: int = 64,
    skip_padding: bool = False,
    encoder: keras.layers.Layer | None = None,
    auxiliary: Sequence[Task] = (),
) -> MultiTaskModel:
    """Past the seed: the shared LSTM, pair fusion [a, b, |a-b|, a*b], and a
    hidden layer in each head, so a head can compare the two tweets.

    Args:
        byte_ids: Take byte ids (default) or the seed's float one-hot input.
        tasks: Names of the two tasks.
        length: Sequence length (None: any length).
        units: LSTM width.
        hidden: Width of each head's hidden ReLU layer.
        skip_padding: See `seed_case1`.
        encoder: See `seed_case1`.
        auxiliary: More tasks sharing the encoder, as given (a task that
            reads one input gets that input's encoding, not the pair): for
            example the sentiment of each tweet (`sentiment_tasks()`).
    """
    return build_model(
        _inputs(byte_ids, length),
        encoder or _encoder(byte_ids, units, skip_padding),
        [Task(name, hidden=[hidden]) for name in tasks] + list(auxiliary),
        fusion="pair",
        name="pair_model",
    )


def sentiment_tasks(classes: int = 3) -> list[Task]:
    """Auxiliary tasks of the tweet pairs: the sentiment class of tweet a and
    of tweet b (`keras_mtl.datasets.tweet_pairs`, labels `classes_a`,
    `classes_b`), each read from its own tweet's encoding.

    Example:
    >>> [t.name for t in sentiment_tasks()]
    ['sentiment_a', 'sentiment_b']
    """
    return [
        Task(f"sentiment_{side}", "multiclass", classes, inputs=[f"tweet_{side}"])
        for side in ("a", "b")
    ]
