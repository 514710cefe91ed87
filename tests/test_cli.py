"""`mtl demo --quick` end to end, and the CLI's one-sentence errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from keras_mtl.cli import main

pytestmark = pytest.mark.slow


def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "out"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == {"case1", "case2", "pair", "pair_aux"}
    assert summary["settings"]["encoder"] == "ngrams"
    for key, model in summary["models"].items():
        assert (out / f"{key}.keras").is_file()
        assert model["epochs"] == 2
        for task, s in model["test"].items():
            assert 0 <= s["accuracy"] <= 1 and 0.5 <= s["base_rate"] <= 1, (key, task)
            assert s["n"] == 256
    entries = {
        (e["task"], e["input"]): e
        for e in summary["models"]["case2"]["dependency"]["entries"]
    }
    assert entries["same_sentiment", "tweet_a"]["mean_abs_change"] == 0.0
    assert entries["a_negative", "tweet_b"]["connected"] is False
    aux = {
        (e["task"], e["input"]): e
        for e in summary["models"]["pair_aux"]["dependency"]["entries"]
    }
    # Each auxiliary sentiment task reads its own tweet only.
    assert aux["sentiment_a", "tweet_b"]["connected"] is False
    assert aux["sentiment_b", "tweet_a"]["connected"] is False
    assert aux["same_sentiment", "tweet_a"]["connected"] is True
    assert summary["yardstick"]["test"]["a_negative"]["accuracy"] > 0.6
    assert len(summary["conclusions"]) == 6
    # Every number in the conclusions comes from the summary.
    acc = summary["models"]["case2"]["test"]["same_sentiment"]["accuracy"]
    assert f"{acc:.3f}" in summary["conclusions"][0]
    pair = summary["models"]["pair"]["test"]["same_sentiment"]["accuracy"]
    with_aux = summary["models"]["pair_aux"]["test"]["same_sentiment"]["accuracy"]
    assert f"from {pair:.3f} to {with_aux:.3f}" in summary["conclusions"][3]
    diagrams = [f for f in summary["files"] if f.endswith((".png", ".dot"))]
    assert len(diagrams) == 4 and all((out / f).is_file() for f in diagrams)


def test_demo_lstm_models_are_the_seeds():
    from keras_mtl.runs.demo import build

    assert build("case1", "lstm").count_params() == 82_434
    assert build("case2", "lstm").count_params() == 82_306
    ngrams = build("pair_aux", "ngrams")
    assert ngrams.task_names == [
        "a_negative",
        "same_sentiment",
        "sentiment_a",
        "sentiment_b",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            [],
            "mtl: name a command: mtl demo, train, affinity, evaluate, predict, "
            "compare, plot or methods (see mtl --help).",
        ),
        (["demo", "--epochs", "0"], "argument --epochs: expected a number >= 1, got 0"),
        (["demo", "--train-pairs", "many"], "expected a whole number, got 'many'"),
        (["dmeo"], "invalid choice: 'dmeo'"),
        (
            ["train", "x.toml", "--process-id", "1"],
            "mtl train: --process-id goes with --processes N (N > 1).",
        ),
        (
            ["train", "x.toml", "--processes", "2", "--process-id", "0"],
            "mtl train: --processes 2 needs --process-id (0 .. processes - 1) and "
            "--coordinator (process 0's HOST:PORT) on every process.",
        ),
        (
            ["train", "x.toml", "--processes", "2", "--process-id", "2"]
            + ["--coordinator", "127.0.0.1:1234"],
            "the process index must be in 0..1 for 2 processes, got 2.",
        ),
        (
            ["train", "x.toml", "--processes", "2", "--process-id", "0"]
            + ["--coordinator", "10.0.0.1"],
            "the coordinator must be process 0's HOST:PORT, got '10.0.0.1'.",
        ),
        (
            ["train", "x.toml", "--processes", "2", "--process-id", "0"]
            + ["--coordinator", "h:1", "--groups", "auto"],
            "mtl train: --groups auto measures affinities in one process;",
        ),
    ],
)
def test_usage_errors_are_one_sentence(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["demo", "--quick", "--out", str(target)]) == 2
    assert (
        capsys.readouterr().err
        == f"mtl demo: --out {target} is a file, expected a folder.\n"
    )


def test_console_script_exit_code():
    result = subprocess.run(
        [sys.executable, "-m", "keras_mtl.cli", "demo", "--batch-size", "-3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
