"""Loaders on tiny files made here, and mixed multi-dataset batches."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest
from layer_checks import assert_resumes_exactly

from keras_mtl import Task
from keras_mtl.config import Config
from keras_mtl.data import (
    InputFiller,
    MixedBatches,
    Source,
    WordVocabulary,
    files,
    labels_for,
    load,
    tweeteval,
)
from keras_mtl.data.mixing import probabilities


def _frame(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "left": [f"text {i} {'good' if i % 2 else 'bad'}" for i in range(n)],
            "right": [f"other {i}" for i in range(n)],
            "positive": rng.integers(0, 2, n),
            "topic": rng.integers(0, 3, n),
        }
    )


def _config(train, extra="", encoding="bytes"):
    return Config.from_string(f"""
[inputs.left]
shape = [16]
encoding = "{encoding}"
length = 16
[inputs.right]
shape = [16]
encoding = "{encoding}"
length = 16
[encoder]
name = "conv1d"
filters = 4
symbols = "embedding"
vocab_size = 256
[[tasks]]
name = "positive"
[[tasks]]
name = "topic"
kind = "multiclass"
num_classes = 3
[data]
source = "files"
train = "{train}"
{extra}
""")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_every_table_format(fmt, tmp_path):
    frame = _frame()
    path = tmp_path / f"train.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    data = load(_config(path))
    assert (
        data.train.x["left"].shape == (12, 16)
        and data.train.x["left"].dtype == np.uint8
    )
    np.testing.assert_array_equal(
        data.train.y["positive"], frame["positive"].astype("float32")
    )
    np.testing.assert_array_equal(data.train.y["topic"], frame["topic"])
    chunks = list(files.iter_table(path, 5))
    assert [len(c) for c in chunks] == [5, 5, 2]


def test_word_encoding_and_label_mapping(tmp_path):
    frame = _frame().rename(columns={"positive": "pos"})
    frame.to_csv(tmp_path / "t.csv", index=False)
    config = _config(
        tmp_path / "t.csv", extra='[data.labels]\npositive = "pos"', encoding="words"
    )
    data = load(config)
    assert set(data.vocabularies) == {"left", "right"}
    vocab = WordVocabulary(**data.vocabularies["left"])
    assert (
        data.train.x["left"][0, :2].tolist()
        == vocab.encode(["text 0"])[0][0, :2].tolist()
    )
    assert data.labels == {"positive": "pos"}


def test_labels_are_checked(tmp_path):
    task = Task("t", "multiclass", num_classes=3)
    np.testing.assert_array_equal(
        labels_for(task, [0, 2, None, -1], "f"), [0, 2, -1, -1]
    )
    with pytest.raises(
        ValueError, match="f: task 't' has label 3, outside the class ids 0..2"
    ):
        labels_for(task, [0, 3], "f")
    with pytest.raises(
        ValueError, match="task 'b' is binary: labels must be 0 or 1, got 2"
    ):
        labels_for(Task("b"), [0, 2], "f")
    with pytest.raises(ValueError, match="task 'b' has a non-numeric label 'yes'"):
        labels_for(Task("b"), ["yes"], "f")


def test_file_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.csv: the file is empty"):
        files.read_table(empty)
    broken = tmp_path / "broken.csv"
    broken.write_text('a,b\n1,2\n3,4,5\n"6\n')
    with pytest.raises(ValueError, match="broken.csv: malformed CSV"):
        files.read_table(broken)
    frame = _frame().drop(columns=["topic"])
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match="no label column 'topic' for task 'topic'"):
        load(_config(tmp_path / "t.csv"))
    unlabelled = _frame()
    unlabelled["topic"] = np.nan
    unlabelled.to_csv(tmp_path / "u.csv", index=False)
    with pytest.raises(
        ValueError, match="task 'topic' has no labelled sample in the training data"
    ):
        load(_config(tmp_path / "u.csv"))


def _tweeteval(folder, texts, labels, classes):
    folder.mkdir()
    (folder / "mapping.txt").write_text(
        "\n".join(f"{i}\t{c}" for i, c in enumerate(classes))
    )
    for split in ("train", "val", "test"):
        (folder / f"{split}_text.txt").write_text("\n".join(texts) + "\n")
        (folder / f"{split}_labels.txt").write_text("\n".join(map(str, labels)))


def test_tweeteval_folder_and_errors(tmp_path):
    _tweeteval(tmp_path / "irony", ["a b", "c d", "e f"], [0, 1, 1], ["no", "yes"])
    frame = tweeteval.read_split(tmp_path / "irony", "train")
    assert frame["label"].tolist() == [0, 1, 1] and frame["text"][0] == "a b"
    (tmp_path / "irony" / "val_labels.txt").write_text("0\n1\n")
    with pytest.raises(
        ValueError, match="val_text.txt has 3 lines but val_labels.txt has 2"
    ):
        tweeteval.read_split(tmp_path / "irony", "val")
    (tmp_path / "irony" / "test_labels.txt").write_text("0\n5\n1\n")
    with pytest.raises(
        ValueError, match=r"line 2: class id 5 is outside 0..1 \(no, yes\)"
    ):
        tweeteval.read_split(tmp_path / "irony", "test")


def test_tweeteval_published_layout_parent_mapping(tmp_path):
    """The published repository: `stance/mapping.txt` serves `stance/<target>`."""
    stance = tmp_path / "stance"
    _tweeteval(stance, ["x"], [0], ["none", "against", "favor"])
    for name in ("train", "val", "test"):
        for kind in ("text", "labels"):
            (stance / f"{name}_{kind}.txt").unlink()
    (stance / "abortion").mkdir()
    for split in ("train", "val", "test"):
        (stance / "abortion" / f"{split}_text.txt").write_text("a\nb\nc\n")
        (stance / "abortion" / f"{split}_labels.txt").write_text("2\n0\n1\n")
    assert tweeteval.read_mapping(stance / "abortion") == ["none", "against", "favor"]
    frame = tweeteval.read_split(stance / "abortion", "train")
    assert frame["label"].tolist() == [2, 0, 1]
    (stance / "mapping.txt").unlink()
    with pytest.raises(ValueError, match="no mapping.txt, neither in the folder"):
        tweeteval.read_split(stance / "abortion", "train")


def test_multi_dataset_batches_carry_the_right_masks(tmp_path):
    tasks = [Task("emotion", "multiclass", num_classes=3), Task("irony")]
    a = Source(
        "emotion",
        {"text": np.full((10, 4), 1, "uint8")},
        {"emotion": np.arange(10) % 3},
    )
    b = Source(
        "irony",
        {"text": np.full((30, 4), 2, "uint8")},
        {"irony": np.ones(30, "float32")},
    )
    batches = MixedBatches([a, b], tasks, batch_size=16, sampling="uniform", seed=3)
    assert len(batches) == 3  # 40 samples / 16
    seen = 0
    for i in range(len(batches)):
        x, y = batches[i]
        from_a = x["text"][:, 0] == 1
        seen += from_a.sum()
        assert np.all((y["emotion"] == -1) == ~from_a)
        assert np.all(np.isnan(y["irony"]) == from_a)
        assert np.all(y["irony"][~from_a] == 1.0)
    assert 0 < seen < 48
    first = batches[0][0]["text"]
    np.testing.assert_array_equal(batches[0][0]["text"], first)  # replayable
    batches.on_epoch_end()
    assert "uniform sampling" in batches.describe()


def test_sampling_probabilities():
    np.testing.assert_allclose(probabilities([1, 3], "proportional", 1.0), [0.25, 0.75])
    np.testing.assert_allclose(probabilities([1, 3], "uniform", 1.0), [0.5, 0.5])
    np.testing.assert_allclose(probabilities([1, 9], "temperature", 2.0), [0.25, 0.75])


def test_sources_config_loads_tweeteval_folders(tmp_path):
    _tweeteval(tmp_path / "irony", ["a b", "c d", "e f"], [0, 1, 1], ["no", "yes"])
    _tweeteval(
        tmp_path / "emotion", ["x", "y", "z", "w"], [0, 1, 2, 1], ["a", "b", "c"]
    )
    config = Config.from_string(f"""
[inputs.text]
shape = [8]
encoding = "bytes"
length = 8
[encoder]
name = "gru"
units = 3
symbols = "onehot"
[[tasks]]
name = "emotion"
kind = "multiclass"
num_classes = 3
[[tasks]]
name = "irony"
[training]
batch_size = 4
sampling = "temperature"
[[data.sources]]
format = "tweeteval"
path = "{tmp_path / "emotion"}"
task = "emotion"
[[data.sources]]
format = "tweeteval"
path = "{tmp_path / "irony"}"
task = "irony"
""")
    data = load(config)
    assert isinstance(data.train, MixedBatches)
    assert data.info["sources"] == {
        "emotion": {"train": 4, "val": 4, "test": 4},
        "irony": {"train": 3, "val": 3, "test": 3},
    }
    assert len(data.val) == 7
    assert (data.val.y["emotion"][4:] == -1).all() and np.isnan(
        data.val.y["irony"][:4]
    ).all()
    json.dumps(data.info)
    # Single-task baselines train each task on its own source only.
    from keras_mtl.runs import runner

    result = runner.run(config, seeds=1, baselines=True, log=lambda m: None)
    models = {r["model"] for r in result["runs"]}
    assert models == {"multi_task", "single_task:emotion", "single_task:irony"}
    single = next(r for r in result["runs"] if r["model"] == "single_task:irony")
    assert set(single["scores"]["test"]) == {"irony"}
    assert set(result["delta_m"]) == {"val", "test"}
    # One-letter texts hold no word for the yardstick's TF-IDF: no row, no error.
    assert result["summary"]["bag_of_words"] == {"val": {}, "test": {}}


def test_streamed_training_matches_the_file(tmp_path):
    from keras_mtl.data.streaming import TableStream

    frame = _frame(n=23)
    frame.to_csv(tmp_path / "t.csv", index=False)
    config = _config(tmp_path / "t.csv", extra="stream = true")
    data = load(config)
    assert isinstance(data.train, TableStream) and len(data.train) == 1  # batch 64
    config = Config(dict(config.data, training={"batch_size": 10}), "<s>")
    stream = load(config).train
    assert len(stream) == 3 and stream.rows == 23
    x, y = stream[2]
    assert x["left"].shape == (3, 16)
    np.testing.assert_array_equal(y["topic"], frame["topic"][20:])
    x0, _ = stream[0]  # out of order: re-reads from the start
    np.testing.assert_array_equal(
        x0["left"], load(_config(tmp_path / "t.csv")).train.x["left"][:10]
    )
    assert set(stream.only(["topic"])[1][1]) == {"topic"}


def _shards(tmp_path, sizes=(7, 10, 5, 9)):
    frame = _frame(n=sum(sizes))
    frame["row"] = np.arange(len(frame))
    (tmp_path / "shards").mkdir()
    start = 0
    for i, size in enumerate(sizes):
        part = frame.iloc[start : start + size]
        if i % 2:
            part.to_parquet(tmp_path / "shards" / f"train-{i}.parquet")
        else:  # shards may mix formats
            part.to_json(
                tmp_path / "shards" / f"train-{i}.jsonl", orient="records", lines=True
            )
        start += size
    return frame


def test_sharded_stream_visits_every_row_once_per_epoch(tmp_path):
    from keras_mtl.data.streaming import ShardStream

    frame = _shards(tmp_path)
    config = _config(
        tmp_path / "shards" / "train-*",
        extra="stream = true\n[training]\nbatch_size = 4\nseed = 3",
    )
    data = load(config)
    stream = data.train
    assert isinstance(stream, ShardStream)
    assert data.info["shards"] == 4 and stream.rows == 31
    assert len(stream) == 2 + 3 + 2 + 3  # batches never span shards
    encoded = InputFiller(config.data["inputs"])(frame, "f")

    def epoch(e):
        stream.set_epoch(e)
        rows = []
        for i in range(len(stream)):
            x, y = stream[i]
            assert len(y["topic"]) <= 4
            # Inputs and labels come from the same rows of the shard.
            index = [
                int(np.flatnonzero((encoded["left"] == row).all(axis=1))[0])
                for row in x["left"]
            ]
            np.testing.assert_array_equal(y["topic"], frame["topic"].to_numpy()[index])
            rows.extend(index)
        return rows

    first = epoch(0)
    assert sorted(first) == list(range(31))
    assert epoch(0) == first  # replayable
    assert epoch(1) != first  # reshuffled
    assert epoch(0)[5:] == [epoch(0)[i] for i in range(5, 31)]
    assert set(stream.only(["topic"])[0][1]) == {"topic"}


@pytest.mark.model
def test_sharded_training_resumes_exactly(tmp_path):
    from keras_mtl.callbacks import Checkpoint

    _shards(tmp_path)
    text = "stream = true\n[training]\nbatch_size = 4"
    config = _config(tmp_path / "shards" / "train-*", extra=text)

    def run(folder, extra):
        keras.utils.set_random_seed(0)
        model = config.build_model()
        model.compile(optimizer="adam")
        train = load(config).train
        return model, model.fit(
            train, epochs=2, verbose=0, callbacks=[Checkpoint(folder, every=2), *extra]
        )

    assert_resumes_exactly(run, tmp_path, stop_at=3)


def test_sharded_stream_errors_name_the_shard(tmp_path):
    frame = _shards(tmp_path, sizes=(4, 4))
    bad = frame.iloc[4:].copy()
    bad.loc[bad.index[1], "topic"] = 7
    bad.to_parquet(tmp_path / "shards" / "train-1.parquet")
    config = _config(tmp_path / "shards" / "train-*", extra="stream = true")
    stream = load(config).train
    with pytest.raises(ValueError, match=r"train-1.parquet.*topic"):
        for i in range(len(stream)):
            stream[i]
    with pytest.raises(
        ValueError, match=r"the pattern .*nothing-\*.csv.* matches no file"
    ):
        load(_config(tmp_path / "nothing-*.csv", extra="stream = true"))


def test_undecodable_bytes_and_number_inputs(tmp_path):
    frame = _frame()
    frame.to_csv(tmp_path / "t.csv", index=False)
    raw = (tmp_path / "t.csv").read_bytes().split(b"\n")
    raw[4] = raw[4][:3] + b"\xff" + raw[4][3:]
    (tmp_path / "bad.csv").write_bytes(b"\n".join(raw))
    with pytest.raises(
        ValueError, match=r"bad.csv: the file is not UTF-8 at line 5 \(byte 0xff\)"
    ):
        files.read_table(tmp_path / "bad.csv")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "mapping.txt").write_bytes(b"0\tno\n1\tye\xe9s\n")
    with pytest.raises(
        ValueError, match="mapping.txt: the file is not UTF-8 at line 2"
    ):
        tweeteval.read_mapping(tmp_path / "s")

    filler = InputFiller({"v": {"shape": [3], "encoding": "numbers"}})
    table = pd.DataFrame({"v": ["1 2 3", "4,5,6", "7 8 9"]})
    np.testing.assert_array_equal(
        filler(table, "f")["v"], np.arange(1, 10, dtype="float32").reshape(3, 3)
    )
    with pytest.raises(
        ValueError, match=r"row 1 has 2 numbers; its shape \[3\] needs 3"
    ):
        filler(pd.DataFrame({"v": ["1 2 3", "4 5"]}), "f")
    with pytest.raises(ValueError, match="row 0 is 'a b c', not a list of numbers"):
        filler(pd.DataFrame({"v": ["a b c"]}), "f")
    with pytest.raises(ValueError, match="1 row.* missing, infinite .* first at row 1"):
        filler(pd.DataFrame({"v": ["1 2 3", "4 inf 6"]}), "f")
    one = InputFiller({"n": {"shape": [5]}})
    with pytest.raises(ValueError, match=r"reads one number per row .* shape is \[5\]"):
        one(pd.DataFrame({"n": np.arange(10.0)}), "f")
    scalar = InputFiller({"n": {"shape": []}})
    with pytest.raises(ValueError, match="'n' .* first at row 2"):
        scalar(pd.DataFrame({"n": [1.0, 2.0, np.nan]}), "f")
