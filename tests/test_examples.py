"""The example configs: each one validates and builds its model; the
TweetEval one trains on the four shared data sets, mixed and masked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keras_mtl.config import Config
from keras_mtl.data import MixedBatches, load
from keras_mtl.evaluation import yardstick
from keras_mtl.runs import runner

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_builds(path, monkeypatch, tmp_path):
    monkeypatch.setenv("MTL_DATA_DIR", str(tmp_path))  # only paths are expanded
    config = Config.load(path)
    if config.data["encoder"]["name"] == "tabular":
        pytest.skip("a tabular encoder is learned from its data (test_census)")
    model = config.build_model()
    assert model.task_names == [t["name"] for t in config.data["tasks"]]


@pytest.mark.slow
def test_tweeteval_example_mixes_four_data_sets(data_dir, monkeypatch):
    if not (data_dir / "tweeteval").is_dir():
        pytest.skip(f"no TweetEval folder in {data_dir}")
    monkeypatch.setenv("MTL_DATA_DIR", str(data_dir))
    path = next(p for p in EXAMPLES if p.stem == "tweeteval")
    config = Config.load(path).with_value("training.steps_per_epoch", 4)
    config = config.with_value("training.epochs", 1)
    # No [encoder]: the default bag of hashed n-grams over the text input.
    assert config.data["encoder"] == {"name": "ngrams"}
    data = load(config)
    assert isinstance(data.train, MixedBatches)
    assert data.info["sources"]["hate"]["train"] == 9000
    assert "temperature sampling" in data.train.describe()
    x, y = data.train[0]
    labelled = np.stack(
        [~np.isnan(y[t]) if t != "emotion" else y[t] >= 0 for t in y], axis=1
    )
    np.testing.assert_array_equal(labelled.sum(axis=1), 1)  # one task per tweet
    # The model's and each baseline's epoch keep [training] steps_per_epoch.
    names = [t.name for t in config.tasks]
    for tasks in (names, names[:1]):
        assert len(runner._training_data(data, tasks)) == 4
    result = runner.run(config, log=lambda m: None, data=data)
    scores = result["summary"]["multi_task"]["test"]
    assert set(scores) == {"emotion", "hate", "irony", "offensive"}
    assert all(0.0 <= s["macro_f1"]["mean"] <= 1.0 for s in scores.values())
    # The yardstick (what --baselines adds), fitted on each task's own
    # training tweets of the mixed sources: TF-IDF + balanced logistic
    # regression's known test macro-F1 on TweetEval.
    yard = yardstick.scores(
        config.tasks,
        config.byte_inputs(),
        runner._training_arrays(data, config.tasks),
        {"test": (data.test.x, data.test.y)},
    )["test"]
    expected = {"emotion": 0.599, "hate": 0.378, "irony": 0.647, "offensive": 0.722}
    for task, value in expected.items():
        assert yard[task]["macro_f1"] == pytest.approx(value, abs=0.002)
