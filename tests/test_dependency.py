"""dependency_map: exact zeros where the graph has no path, effects elsewhere."""

from __future__ import annotations

import pytest

from keras_mtl.analysis import dependency_map
from keras_mtl.models import presets

pytestmark = pytest.mark.model


def _data(rng, n=48, length=12):
    x = {
        k: rng.integers(1, 256, (n, length)).astype("uint8")
        for k in ("tweet_a", "tweet_b")
    }
    y = {k: rng.integers(0, 2, n).astype("float32") for k in presets.TASKS}
    return x, y


def test_case2_has_exact_zeros_and_case1_does_not(rng):
    x, y = _data(rng)
    case2 = dependency_map(presets.seed_case2(byte_ids=True, length=12), x, y)
    assert case2["a_negative", "tweet_b"].connected is False
    assert case2["a_negative", "tweet_b"].mean_abs_change == 0.0
    assert case2["same_sentiment", "tweet_a"].connected is False
    assert case2["same_sentiment", "tweet_a"].mean_abs_change == 0.0
    assert case2["same_sentiment", "tweet_a"].score_drop == 0.0
    assert case2["a_negative", "tweet_a"].mean_abs_change > 0
    assert case2["same_sentiment", "tweet_b"].mean_abs_change > 0

    case1 = dependency_map(presets.seed_case1(byte_ids=True, length=12), x, y)
    for entry in case1.entries:
        assert entry.connected
        assert entry.mean_abs_change > 0


def test_scores_and_formats(rng):
    x, y = _data(rng)
    model = presets.seed_case2(byte_ids=True, length=12)
    deps = dependency_map(model, x, y)
    p = model.predict_tasks(x)
    e = deps["a_negative", "tweet_a"]
    assert e.metric == "accuracy"
    assert e.score == pytest.approx(
        ((p["a_negative"][:, 0] >= 0.5) == y["a_negative"]).mean()
    )
    assert 0 <= e.swapped_score <= 1
    text = deps.format()
    assert "not connected, change 0.0000" in text
    data = deps.to_dict()
    assert data["samples"] == 48 and len(data["entries"]) == 4


def test_list_inputs_and_errors(rng):
    x, _ = _data(rng)
    model = presets.seed_case2(byte_ids=True, length=12)
    deps = dependency_map(model, [x["tweet_a"], x["tweet_b"]])
    assert deps["a_negative", "tweet_b"].mean_abs_change == 0.0
    assert deps["a_negative", "tweet_a"].score is None
    with pytest.raises(ValueError, match="x has no array for input 'tweet_b'"):
        dependency_map(model, {"tweet_a": x["tweet_a"]})
    with pytest.raises(ValueError, match="at least 2 samples"):
        dependency_map(model, {k: v[:1] for k, v in x.items()})
