"""What `mtl demo` reports: the models' labels, the table of test scores,
and its conclusions, each derived from the run's numbers."""

from __future__ import annotations

import math
from typing import Any

MODELS = {
    "case1": "Case 1: concatenate",
    "case2": "Case 2: per input",
    "pair": "Pair fusion + hidden layer",
    "pair_aux": "Pair + sentiment of a and b (auxiliary)",
}
ENCODERS = {
    "ngrams": "bag of hashed word and character n-grams",
    "lstm": "the seed's byte-level LSTM(64)",
}


def _fmt(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _chance_margin(base: float, n: int) -> float:
    """Two binomial standard errors around the base rate."""
    return 2.0 * math.sqrt(max(base * (1 - base), 1e-12) / max(n, 1))


def conclusions(summary: dict[str, Any]) -> list[str]:
    """Plain-words findings, each derived from the measured numbers."""
    models = summary["models"]
    scores = {k: m["test"] for k, m in models.items()}
    deps = {k: m["dependency"] for k, m in models.items()}
    yard = summary["yardstick"]["test"]
    out = []

    def dep(model: str, task: str, name: str) -> dict[str, Any]:
        for e in deps[model]["entries"]:
            if e["task"] == task and e["input"] == name:
                return e
        raise KeyError((model, task, name))

    def verdict(model: str, task: str) -> tuple[str, float]:
        s = scores[model][task]
        gain = s["accuracy"] - s["base_rate"]
        margin = _chance_margin(s["base_rate"], s["n"])
        if gain > margin:
            return "above chance", gain
        if gain < -margin:
            return "below chance", gain
        return "no better than chance", gain

    c2 = dep("case2", "same_sentiment", "tweet_a")
    c2_a = dep("case2", "a_negative", "tweet_b")
    v, _ = verdict("case2", "same_sentiment")
    out.append(
        "Both seed cases are multi-task: two heads train one shared encoder. In Case 2 "
        f"the graph does not connect tweet_a to same_sentiment (swapping tweet_a "
        f"changes its predictions by {c2['mean_abs_change']:.4f}) nor tweet_b to "
        f"a_negative (change {c2_a['mean_abs_change']:.4f}), so same_sentiment "
        f"sees one tweet only: accuracy {scores['case2']['same_sentiment']['accuracy']:.3f} "
        f"against a base rate of {scores['case2']['same_sentiment']['base_rate']:.3f}, "
        f"{v}."
    )
    c1_b = dep("case1", "same_sentiment", "tweet_a")
    c1_a = dep("case1", "a_negative", "tweet_b")
    v1, g1 = verdict("case1", "same_sentiment")
    sentence = (
        "Concatenation (Case 1) connects both tweets to both heads (swapping tweet_a "
        f"moves same_sentiment by {c1_b['mean_abs_change']:.4f}; swapping tweet_b "
        f"moves a_negative by {c1_a['mean_abs_change']:.4f}), and same_sentiment "
        f"reaches {scores['case1']['same_sentiment']['accuracy']:.3f}, {v1}"
    )
    if v1 != "above chance":
        sentence += (
            ": a single Dense(1) on [h_a, h_b] computes w_a.h_a + w_b.h_b, adding "
            "evidence from each tweet, and cannot test whether the two agree"
        )
    out.append(sentence + ".")
    vp, gp = verdict("pair", "same_sentiment")
    diff = (
        scores["pair"]["same_sentiment"]["accuracy"]
        - scores["case1"]["same_sentiment"]["accuracy"]
    )
    out.append(
        "With the pair representation [a, b, |a-b|, a*b] and a hidden layer, "
        f"same_sentiment reaches {scores['pair']['same_sentiment']['accuracy']:.3f} "
        f"(AUC {_fmt(scores['pair']['same_sentiment']['auc'])}), {vp}, "
        f"{abs(diff):.3f} {'above' if diff >= 0 else 'below'} Case 1."
    )
    if "pair_aux" in scores:
        moves = []
        for task in ("same_sentiment", "a_negative"):
            before = scores["pair"][task]["accuracy"]
            after = scores["pair_aux"][task]["accuracy"]
            moves.append(
                f"{task} from {before:.3f} to {after:.3f} ({after - before:+.3f})"
            )
        gain = (
            scores["pair_aux"]["same_sentiment"]["accuracy"]
            - scores["pair"]["same_sentiment"]["accuracy"]
        )
        margin = _chance_margin(0.5, scores["pair"]["same_sentiment"]["n"])
        why = (
            "each tweet's own label teaches the encoder what the pair task has to "
            "compare"
            if gain > margin
            else f"within two standard errors ({margin:.3f}) of no change on this run"
        )
        out.append(
            "Adding the sentiment of tweet a and of tweet b as auxiliary tasks on the "
            f"shared encoder moves {moves[0]} and {moves[1]}: {why}."
        )
    neg = {k: scores[k]["a_negative"]["accuracy"] for k in scores}
    best = max(neg, key=neg.get)
    out.append(
        "a_negative needs tweet a only: test accuracy "
        + ", ".join(f"{_short(k)} {neg[k]:.3f}" for k in neg)
        + f" (base rate {scores['case1']['a_negative']['base_rate']:.3f}); best: "
        f"{_short(best)}."
    )
    yard_neg = yard["a_negative"]["accuracy"]
    yard_same = yard["same_sentiment"]["accuracy"]
    best_same = max(scores[k]["same_sentiment"]["accuracy"] for k in scores)
    epochs = sorted({m["epochs"] for m in models.values()})
    out.append(
        f"The bag-of-words yardstick, trained on the sentiment of the same "
        f"{summary['data']['train_tweets']} training tweets, gets {yard_neg:.3f} on "
        f"a_negative and {yard_same:.3f} on same_sentiment; the models on "
        f"{ENCODERS[summary['settings']['encoder']]}, after "
        f"{'-'.join(str(e) for e in (epochs[0], epochs[-1]) if e) if len(epochs) > 1 else epochs[0]} "
        f"epoch(s) on {summary['settings']['train_pairs']} pairs, are "
        f"{'below' if neg[best] < yard_neg else 'at or above'} it on a_negative "
        f"(best {neg[best]:.3f}) and {'below' if best_same < yard_same else 'at or above'} "
        f"it on same_sentiment (best {best_same:.3f})."
    )
    return out


def _short(key: str) -> str:
    """A model's label up to its colon ("Case 1"), or whole."""
    return MODELS[key].split(":")[0]


def print_table(console: Any, summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="Test set: per-task scores")
    for column in ("model", "task", "accuracy", "AUC", "base rate", "pairs"):
        table.add_column(
            column, justify="left" if column in ("model", "task") else "right"
        )
    rows = [(MODELS[k], m["test"]) for k, m in summary["models"].items()]
    rows.append(("Bag-of-words yardstick", summary["yardstick"]["test"]))
    for label, test in rows:
        for task, s in test.items():
            table.add_row(
                label,
                task,
                _fmt(s["accuracy"]),
                _fmt(s["auc"]),
                _fmt(s["base_rate"]),
                str(s["n"]),
            )
    console.print(table)
