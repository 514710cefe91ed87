"""`mtl train/evaluate/predict/compare/plot/methods` end to end on a small config."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from keras_mtl.cli import main

pytestmark = pytest.mark.slow


def _write(tmp_path, n=96, seed=0):
    rng = np.random.default_rng(seed)
    words = np.array(["good", "bad", "fine", "awful", "great", "poor"])
    rows = []
    for _ in range(n):
        w = rng.choice(words, 3)
        rows.append(
            {
                "text": " ".join(w),
                "positive": int(sum(x in ("good", "fine", "great") for x in w) >= 2),
                "strong": int(any(x in ("great", "awful") for x in w)),
            }
        )
    frame = pd.DataFrame(rows)
    frame.iloc[: n * 2 // 3].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[n * 2 // 3 :].to_csv(tmp_path / "test.csv", index=False)
    config = tmp_path / "small.toml"
    config.write_text(f"""
[model]
name = "small"
[inputs.text]
shape = [24]
encoding = "bytes"
length = 24
[encoder]
name = "conv1d"
filters = 8
kernel_size = 3
num_layers = 1
symbols = "embedding"
embedding_dim = 8
[[tasks]]
name = "positive"
[[tasks]]
name = "strong"
[compile]
optimizer = {{ name = "adam", learning_rate = 0.01 }}
[training]
epochs = 2
batch_size = 16
[data]
source = "files"
train = "{tmp_path / "train.csv"}"
test = "{tmp_path / "test.csv"}"
""")
    return config


def test_train_evaluate_predict_plot(tmp_path, capsys):
    config = _write(tmp_path)
    out = tmp_path / "run"
    assert (
        main(["train", str(config), "--out", str(out), "--seeds", "2", "--baselines"])
        == 0
    )
    result = json.loads((out / "results.json").read_text())
    assert result["seeds"] == [0, 1]
    summary = result["summary"]["multi_task"]["test"]["positive"]["accuracy"]
    assert (
        summary["n"] == 2
        and summary["ci95"][0] <= summary["mean"] <= summary["ci95"][1]
    )
    assert set(result["summary"]) == {
        "multi_task",
        "single_task:positive",
        "single_task:strong",
        "bag_of_words",
    }
    # The yardstick row is scikit-learn's TF-IDF + balanced logistic
    # regression fitted on the same training texts.
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train, test = (
        pd.read_csv(tmp_path / "train.csv"),
        pd.read_csv(tmp_path / "test.csv"),
    )
    for task in ("positive", "strong"):
        vectorizer = TfidfVectorizer(ngram_range=(1, 2))
        classifier = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
        classifier.fit(vectorizer.fit_transform(train["text"]), train[task])
        expected = (
            classifier.predict(vectorizer.transform(test["text"])) == test[task]
        ).mean()
        row = result["summary"]["bag_of_words"]["test"][task]["accuracy"]
        assert row["mean"] == pytest.approx(expected) and row["n"] == 1
    assert "bag_of_words" in (out / "results.md").read_text()
    assert "test" in result["delta_m"]
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "Δm%" in (out / "results.md").read_text()

    scores = tmp_path / "scores.json"
    assert (
        main(
            [
                "evaluate",
                str(out / "model.keras"),
                str(tmp_path / "test.csv"),
                "--json",
                str(scores),
            ]
        )
        == 0
    )
    evaluated = json.loads(scores.read_text())
    first_seed = result["runs"][0]["scores"]["test"]
    for task in ("positive", "strong"):
        assert evaluated[task]["accuracy"] == pytest.approx(
            first_seed[task]["accuracy"]
        )

    preds = tmp_path / "preds.jsonl"
    assert (
        main(
            [
                "predict",
                str(out / "model.keras"),
                str(tmp_path / "test.csv"),
                "--out",
                str(preds),
            ]
        )
        == 0
    )
    table = pd.read_json(preds, lines=True)
    assert list(table.columns) == [
        "positive",
        "positive_probability",
        "strong",
        "strong_probability",
    ]
    assert len(table) == 32 and set(table["positive"]) <= {0, 1}

    (out / "learning_curves.png").unlink()
    assert main(["plot", str(out)]) == 0
    assert (out / "learning_curves.png").is_file()


def test_compare(tmp_path):
    config = _write(tmp_path)
    out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                str(config),
                "--vary",
                "balancer=ew,pcgrad",
                "--seeds",
                "1",
                "--epochs",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "compare.json").read_text())
    assert set(report["variants"]) == {"ew", "pcgrad"}
    assert report["variants"]["ew"]["delta_m"]["mean"] == 0.0


def test_methods_lists_everything(capsys):
    assert main(["methods"]) == 0
    text = capsys.readouterr().out
    for name in ("mmoe", "per_input", "transformer", "upgrad", "nash_mtl"):
        assert name in text
    # Brackets in a description are text, not markup.
    assert "[h_a, h_b]" in text and "[h_a, h_b, |h_a - h_b|, h_a * h_b]" in text


def test_the_methods_catalogue_matches_the_registries():
    from keras_mtl_cli import catalog

    assert catalog.build() == catalog.METHODS, (
        "stale: run python -m keras_mtl_cli.catalog, then ruff format"
    )


@pytest.mark.parametrize(
    "argv", [["--help"], ["methods"], ["train"], ["nonsense"], ["demo", "--seed", "x"]]
)
def test_help_methods_and_usage_errors_import_no_backend(argv):
    """They answer from the CLI package alone: no Keras, no backend, no log
    lines on stderr beyond the one-sentence usage error."""
    code = (
        "import sys\n"
        "from keras_mtl_cli import main\n"
        "try:\n"
        f"    rc = main({argv!r})\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        "heavy = [m for m in ('keras', 'jax', 'torch', 'tensorflow') if m in sys.modules]\n"
        "print('HEAVY', heavy, rc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert "HEAVY [] " in done.stdout, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) <= 1, errors


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "missing.toml"], "missing.toml: no such config file."),
        (["compare", "x.toml", "--vary", "fusion"], "--vary must be KEY=V1,V2"),
        (["evaluate", "nope.keras", "data.csv"], "mtl: no model file at nope.keras."),
        (["plot", "."], "has no results.json"),
    ],
)
def test_errors_exit_2_in_one_sentence(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_bad_config_and_bad_data_exit_2(tmp_path, capsys):
    config = _write(tmp_path)
    text = config.read_text().replace('name = "conv1d"', 'name = "conv1"')
    config.write_text(text)
    assert main(["train", str(config), "--out", str(tmp_path / "o")]) == 2
    assert (
        "names an unknown encoder 'conv1' (did you mean \"conv1d\"?)"
        in capsys.readouterr().err
    )
    config = _write(tmp_path)
    frame = pd.read_csv(tmp_path / "train.csv")
    frame.loc[0, "positive"] = 7
    frame.to_csv(tmp_path / "train.csv", index=False)
    assert main(["train", str(config), "--out", str(tmp_path / "o")]) == 2
    assert (
        "task 'positive' is binary: labels must be 0 or 1, got 7"
        in capsys.readouterr().err
    )


def test_affinity_and_groups(tmp_path, capsys):
    config = _write(tmp_path, n=192)
    out = tmp_path / "aff"
    assert main(["affinity", str(config), "--out", str(out), "--every", "2"]) == 0
    printed = capsys.readouterr().out
    assert "lookahead affinity" in printed and "Recommended groups:" in printed
    saved = json.loads((out / "affinity.json").read_text())
    assert saved["tasks"] == ["positive", "strong"]
    # 128 training rows in batches of 16, 2 epochs: 16 steps, every 2nd measured.
    assert len(saved["lookahead"]) == 2 and saved["measurements"][0][1] == 8
    assert (out / "affinity.png").read_bytes()[:4] == b"\x89PNG"

    run = tmp_path / "grouped"
    assert (
        main(
            [
                "train",
                str(config),
                "--out",
                str(run),
                "--baselines",
                "--groups",
                "positive;strong",
            ]
        )
        == 0
    )
    result = json.loads((run / "results.json").read_text())
    assert result["groups"] == [["positive"], ["strong"]]
    # Groups of one are the single-task models: the grouped model's scores
    # are theirs, and its Δm% is exactly 0.
    grouped = result["summary"]["grouped"]["test"]
    single = result["summary"]["single_task:positive"]["test"]["positive"]
    assert grouped["positive"]["accuracy"]["mean"] == single["accuracy"]["mean"]
    assert result["delta_m_grouped"]["test"]["mean"] == 0.0
    assert "grouped vs single-task" in (run / "results.md").read_text()
    # "auto" measures the affinity first and trains what it recommends.
    auto = tmp_path / "auto"
    assert main(["train", str(config), "--out", str(auto), "--groups", "auto"]) == 0
    assert "Recommended groups:" in capsys.readouterr().out
    groups = json.loads((auto / "results.json").read_text())["groups"]
    assert {t for g in groups for t in g} == {"positive", "strong"}
    assert "grouped" in json.loads((auto / "results.json").read_text())["summary"]
    assert (
        main(["train", str(config), "--out", str(tmp_path / "x"), "--budget", "2"]) == 2
    )
    assert "--budget goes with --groups auto" in capsys.readouterr().err


def test_python_run_trains_baselines_and_gives_delta_m(tmp_path):
    """`keras_mtl.run`: the CLI's runner from Python, on a path or a dict."""
    import tomllib

    import keras_mtl
    from keras_mtl.evaluation import delta_m, summarize

    path = _write(tmp_path)
    result = keras_mtl.run(path, seeds=2, baselines=True, log=lambda m: None)
    from keras_mtl.evaluation.scoring import HIGHER_IS_BETTER

    tasks = ("positive", "strong")
    per_seed, accuracy_only = [], []
    for seed in (0, 1):
        runs = {r["model"]: r for r in result["runs"] if r["seed"] == seed}
        multi = runs["multi_task"]["scores"]["test"]
        single = {t: runs[f"single_task:{t}"]["scores"]["test"][t] for t in tasks}
        per_seed.append(delta_m({t: multi[t] for t in tasks}, single, HIGHER_IS_BETTER))
        # Plain {task: score} dicts, one direction for all.
        accuracy_only.append(
            delta_m(
                {t: multi[t]["accuracy"] for t in tasks},
                {t: single[t]["accuracy"] for t in tasks},
                True,
            )
        )
    summary = result["delta_m"]["test"]
    assert summary == summarize(per_seed)
    assert summary["n"] == 2
    assert summary["ci95"][0] <= summary["mean"] <= summary["ci95"][1]
    assert all(np.isfinite(accuracy_only))
    as_dict = tomllib.loads(path.read_text())
    again = keras_mtl.run(as_dict, seeds=1, baselines=False, log=lambda m: None)
    np.testing.assert_allclose(
        again["summary"]["multi_task"]["test"]["positive"]["accuracy"]["mean"],
        result["runs"][0]["scores"]["test"]["positive"]["accuracy"],
    )


def test_mtl_train_checkpoints_by_default_and_can_be_told_not_to(tmp_path):
    # The CLI's choice of checkpoints; Checkpoint itself is tested on
    # every backend (test_robustness).
    from keras_mtl.callbacks import Checkpoint

    config = _write(tmp_path)
    assert main(["train", str(config), "--out", str(tmp_path / "on")]) == 0
    saved = Checkpoint(tmp_path / "on" / "checkpoints" / "multi_task-seed0").paths()
    assert [p.name for p in saved] == ["ckpt-0000000008.npz", "ckpt-0000000004.npz"]
    assert (
        main(["train", str(config), "--out", str(tmp_path / "off"), "--no-checkpoints"])
        == 0
    )
    assert not (tmp_path / "off" / "checkpoints").exists()
    assert (tmp_path / "off" / "model.keras").is_file()
