"""TOML configs: round trips, examples, and every error message."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from keras_mtl import Task, build_model
from keras_mtl.config import Config, ConfigError, config_of
from keras_mtl.encoders import LSTMEncoder

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

BASE = """
[model]
name = "tiny"
fusion = "concatenate"

[inputs.a]
shape = [5]
[inputs.b]
shape = [5]

[encoder]
name = "gru"
units = 4

[[tasks]]
name = "first"

[[tasks]]
name = "second"
kind = "multiclass"
num_classes = 3
hidden = [4]

[compile]
optimizer = "adam"
balancer = "upgrad"

[training]
epochs = 2
"""


@pytest.mark.model
def test_python_to_toml_to_python_gives_identical_predictions(rng):
    keras.utils.set_random_seed(7)
    inputs = {n: keras.Input((12,), dtype="uint8", name=n) for n in ("p", "q")}
    model = build_model(
        inputs,
        LSTMEncoder(6, symbols="onehot"),
        [
            Task("x", inputs=["p"]),
            Task("y", kind="multiclass", num_classes=3, hidden=[5]),
        ],
        fusion="concatenate",
        architecture=None,
        name="roundtrip",
    )
    text = config_of(model, {"optimizer": "adam", "balancer": "pcgrad"}).to_toml()
    again = Config.from_string(text)
    keras.utils.set_random_seed(7)
    rebuilt = again.build_model()
    assert rebuilt.count_params() == model.count_params()
    for a, b in zip(model.get_weights(), rebuilt.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = {n: rng.integers(0, 256, (4, 12)).astype("uint8") for n in ("p", "q")}
    for task, values in model.predict_tasks(x).items():
        np.testing.assert_array_equal(rebuilt.predict_tasks(x)[task], values)
    assert again.compile_kwargs()["balancer"] == "pcgrad"


def test_config_of_a_hand_built_model_is_refused():
    a = keras.Input((3,))
    from keras_mtl import Model

    model = Model(a, [keras.layers.Dense(1, activation="sigmoid")(a)])
    with pytest.raises(ConfigError, match="was not built by build_model"):
        config_of(model)


def test_with_value_shortcuts():
    config = Config.from_string(BASE)
    assert config.with_value("fusion", "sum").data["model"]["fusion"] == "sum"
    assert (
        config.with_value("balancer", "pcgrad").data["compile"]["balancer"] == "pcgrad"
    )
    assert config.with_value("training.epochs", 5).training()["epochs"] == 5


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_examples_are_valid(name):
    config = Config.load(EXAMPLES / name)
    assert config.tasks


def test_seed_example_builds_the_seed():
    assert (
        Config.load(EXAMPLES / "seed_case1.toml").build_model().count_params() == 82_434
    )
    assert (
        Config.load(EXAMPLES / "seed_case2.toml").build_model().count_params() == 82_306
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[modle]\n", ""), '<string>: modle is not a section (did you mean "model"?)'),
        (
            ("units = 4", "unit = 4"),
            "<string>: [encoder].unit is not an argument of encoder "
            "'gru' (did you mean \"units\"?)",
        ),
        (
            ('name = "gru"', 'name = "gur"'),
            "names an unknown encoder 'gur' (did you mean \"gru\"?)",
        ),
        (
            ('kind = "multiclass"', 'kind = "multiclas"'),
            "tasks[1].kind must be one of "
            "binary, multiclass, multilabel, regression, got 'multiclas' (did you mean "
            '"multiclass"?)',
        ),
        (
            ('balancer = "upgrad"', 'balancer = "upgrd"'),
            "[compile].balancer names an "
            "unknown balancer 'upgrd' (did you mean \"upgrad\"?)",
        ),
        (
            ('balancer = "upgrad"', 'balancer = { name = "cagrad", cc = 1 }'),
            "[compile].balancer.cc is not an argument of balancer 'cagrad' (did you mean "
            '"c"?)',
        ),
        (
            ('optimizer = "adam"', 'optimizer = "adamm"'),
            "[compile].optimizer names an unknown optimizer 'adamm'",
        ),
        (
            ("epochs = 2", "epochs = 0"),
            "[training].epochs must be a whole number >= 1, got 0.",
        ),
        (
            ("epochs = 2", "epoch = 2"),
            '[training].epoch is not a key of [training] (did you mean "epochs"?)',
        ),
        (
            ('fusion = "concatenate"', 'fusion = "concat"'),
            "[model].fusion names an unknown fusion 'concat'",
        ),
        (
            ('[[tasks]]\nname = "first"', '[[tasks]]\nname = "first"\ninputs = ["c"]'),
            "tasks[0].inputs names input 'c', but the inputs are a, b",
        ),
        (
            ("shape = [5]\n[inputs.b]", "shape = [-5]\n[inputs.b]"),
            "[inputs.a].shape must be a list of positive integers, got [-5].",
        ),
        (
            ("[training]", '[data]\nsource = "tweet_pair"\n[training]'),
            "[data].source must be one of tweet_pairs, census_income, files, got 'tweet_pair' "
            '(did you mean "tweet_pairs"?)',
        ),
        (('name = "tiny"', "name = tiny"), "<string>: not valid TOML"),
        (
            # Found by the CLI fuzzer: byte ids fed to a sequence encoder as
            # floats ended in a TypeError inside Keras.
            ("shape = [5]\n[inputs.b]", 'encoding = "bytes"\n[inputs.b]'),
            "[encoder].symbols is missing: input 'a' holds token ids, which a gru "
            'encoder reads with symbols = "embedding"',
        ),
    ],
)
def test_config_errors(change, message):
    text = BASE.replace(*change) if change[0] in BASE else change[0] + BASE
    with pytest.raises(ConfigError) as error:
        Config.from_string(text)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_section_given_as_a_value():
    # Found by the CLI fuzzer: `training = 0` above the tables.
    text = "training = 0\n" + BASE.replace("[training]\nepochs = 2\n", "")
    with pytest.raises(ConfigError, match=r"\[training\] must be a table, got int 0"):
        Config.from_string(text)


def test_missing_tasks_and_files(tmp_path):
    with pytest.raises(ConfigError, match=r"\[tasks\] is missing"):
        Config.from_string(BASE.split("[[tasks]]")[0])
    with pytest.raises(ConfigError, match="no such config file"):
        Config.load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        Config.load(bad)


def test_values_are_checked_against_their_annotations():
    base = """
[inputs.text]
shape = [8]
encoding = "bytes"
length = LENGTH
[encoder]
name = "gru"
units = UNITS
symbols = "embedding"
[[tasks]]
name = "t"
weight = WEIGHT
[training]
epochs = 1
"""

    def config(length="8", units="4", weight="1.0"):
        text = base.replace("LENGTH", length).replace("UNITS", units)
        return Config.from_string(text.replace("WEIGHT", weight))

    config()
    config(weight="2")  # an int is a number
    with pytest.raises(
        ConfigError, match=r"\[inputs.text\].length must be a whole number, got"
    ):
        config(length='""')
    with pytest.raises(ConfigError, match=r"\[encoder\].units must be a whole number"):
        config(units="2.5")
    with pytest.raises(ConfigError, match=r"tasks\[0\].weight must be a number, got"):
        config(weight="true")
    with pytest.raises(
        ConfigError, match=r"\[encoder\].name must be the encoder's name"
    ):
        Config.from_string(
            base.replace('name = "gru"', "name = []")
            .replace("LENGTH", "8")
            .replace("UNITS", "4")
            .replace("WEIGHT", "1.0")
        )


def test_text_inputs_default_to_the_ngram_encoder():
    text = """
[inputs.a]
shape = [16]
encoding = "bytes"
length = 16
[[tasks]]
name = "t"
[training]
class_weight = "balanced"
"""
    config = Config.from_string(text)
    assert config.data["encoder"] == {"name": "ngrams"}
    assert "[encoder]" in config.to_toml()
    words = text.replace(
        'encoding = "bytes"', 'encoding = "words"\nvocabulary_size = 50'
    )
    assert Config.from_string(words).data["encoder"] == {
        "name": "ngrams",
        "tokens": "words",
        "vocab_size": 52,
    }
    # Float inputs have no default encoder.
    with pytest.raises(ConfigError, match=r"\[encoder\] is missing"):
        Config.from_string(BASE.replace('[encoder]\nname = "gru"\nunits = 4\n', ""))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"balance"', '[training].class_weight must be "balanced" or a table by task'),
        ('{ frist = "balanced" }', "[training].class_weight.frist names no task"),
        ("3", "[training].class_weight must be a string or a table, got int 3."),
    ],
)
def test_class_weight_key_errors(value, message):
    with pytest.raises(ConfigError) as error:
        Config.from_string(BASE.replace("epochs = 2", f"class_weight = {value}"))
    assert message in str(error.value)
