"""The `mtl` command line tool (its code imports `keras_mtl` only inside commands).

Commands: `demo`, `train CONFIG`, `affinity CONFIG`, `evaluate MODEL DATA`,
`predict MODEL DATA`, `compare CONFIG --vary KEY=V1,V2`, `plot RESULTS`,
`methods`. Exit codes: 0
done, 1 failed run, 2 bad usage, config or data (one sentence on stderr,
never a traceback; `MTL_TRACEBACK=1` shows one).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from keras_mtl_cli.runs import affinity, compare, demo, plot, train
from keras_mtl_cli.saved import evaluate, predict
from keras_mtl_cli.usage import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["COMMANDS", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "UsageError", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}.")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mtl", description="Multi-task learning for Keras 3.")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    demo = commands.add_parser(
        "demo",
        help="train the seed's two models and better ones on real tweet pairs",
        description="Trains Case 1 (concatenate), Case 2 (per input), a pair-fusion model "
        "and the same with each tweet's sentiment as auxiliary tasks on real tweet "
        "pairs, and a bag-of-words yardstick; prints per-task scores, dependency maps "
        "and conclusions.",
    )
    demo.add_argument(
        "--out", default="demo-out", help="output folder (default demo-out)"
    )
    demo.add_argument(
        "--quick", action="store_true", help="a small run for a first look"
    )
    demo.add_argument(
        "--epochs",
        type=_positive,
        help="training epochs per model (default: early stopping on the validation "
        "loss; 1 for the LSTM)",
    )
    demo.add_argument(
        "--encoder",
        choices=["ngrams", "lstm"],
        default="ngrams",
        help="the shared text encoder: hashed n-grams (default) or the seed's LSTM(64)",
    )
    demo.add_argument("--train-pairs", type=_positive, help="training pairs")
    demo.add_argument("--batch-size", type=_positive, help="batch size")
    demo.add_argument("--seed", type=int, default=0, help="seed of data and weights")

    train = commands.add_parser(
        "train",
        help="train the model a TOML config describes",
        description="Trains a config's model over seeds, scores it "
        "on validation and test data, and writes the model, results "
        "and plots.",
    )
    train.add_argument("config", help="the TOML config")
    train.add_argument(
        "--out", default="mtl-out", help="output folder (default mtl-out)"
    )
    train.add_argument(
        "--seeds", type=_positive, help="number of seeds (default: the config's)"
    )
    train.add_argument(
        "--baselines",
        action="store_true",
        help="also train single-task baselines and report Δm%%",
    )
    train.add_argument("--epochs", type=_positive, help="override [training] epochs")
    train.add_argument(
        "--groups",
        help='also train task groups, each as one model: "a,b;c", or "auto" for '
        "the groups `mtl affinity` recommends (needs --baselines for Δm%%)",
    )
    train.add_argument(
        "--budget", type=_positive, help="with --groups auto: at most this many groups"
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run whose checkpoints are in OUT/checkpoints",
    )
    train.add_argument(
        "--no-checkpoints",
        action="store_true",
        help="write no checkpoints (by default every epoch and every "
        "[training] checkpoint_minutes, 5, within one, to OUT/checkpoints)",
    )
    train.add_argument(
        "--processes",
        type=_positive,
        default=1,
        help="train with this many JAX processes, one per host: start the same "
        "command on each with its --process-id and process 0's --coordinator",
    )
    train.add_argument(
        "--process-id",
        type=int,
        help="with --processes: this process's index, 0 .. processes - 1",
    )
    train.add_argument(
        "--coordinator",
        help="with --processes: process 0's HOST:PORT (a free port)",
    )

    affinity = commands.add_parser(
        "affinity",
        help="measure which tasks help each other and recommend task groups",
        description="Trains the config's model once (summed losses), measures the "
        "lookahead affinity and gradient cosine of every pair of tasks every few "
        "steps, prints both matrices and the recommended groups, and writes "
        "affinity.png and affinity.json.",
    )
    affinity.add_argument("config", help="the TOML config")
    affinity.add_argument(
        "--out", default="mtl-affinity", help="output folder (default mtl-affinity)"
    )
    affinity.add_argument("--epochs", type=_positive, help="override [training] epochs")
    affinity.add_argument(
        "--every", type=_positive, default=10, help="steps between measurements"
    )
    affinity.add_argument(
        "--budget",
        type=_positive,
        help="at most this many groups (default: half the tasks, at least 2)",
    )

    evaluate = commands.add_parser(
        "evaluate", help="score a saved model on a data file"
    )
    evaluate.add_argument("model", help="a .keras file saved by mtl train")
    evaluate.add_argument(
        "data", help="a CSV, JSONL or Parquet file with the model's columns"
    )
    evaluate.add_argument("--format", choices=["csv", "jsonl", "parquet"])
    evaluate.add_argument("--json", help="also write the scores as JSON to this file")

    predict = commands.add_parser("predict", help="write a saved model's predictions")
    predict.add_argument("model", help="a .keras file saved by mtl train")
    predict.add_argument(
        "data", help="a CSV, JSONL or Parquet file with the model's inputs"
    )
    predict.add_argument(
        "--out", required=True, help="predictions file (.csv or .jsonl)"
    )
    predict.add_argument("--format", choices=["csv", "jsonl", "parquet"])

    compare = commands.add_parser(
        "compare", help="compare variants of a config over seeds"
    )
    compare.add_argument("config", help="the TOML config")
    compare.add_argument(
        "--vary",
        required=True,
        help="KEY=V1,V2,... e.g. fusion=concatenate,per_input or balancer=ew,uw,pcgrad",
    )
    compare.add_argument("--seeds", type=_positive, default=1)
    compare.add_argument(
        "--baselines",
        action="store_true",
        help="Δm%% against single-task baselines (default: against the first variant)",
    )
    compare.add_argument("--epochs", type=_positive, help="override [training] epochs")
    compare.add_argument("--out", default="mtl-compare", help="output folder")

    plot = commands.add_parser("plot", help="draw the plots of a results folder again")
    plot.add_argument("results", help="a folder written by mtl train")

    commands.add_parser(
        "methods", help="list architectures, fusions, encoders and balancers"
    )
    return parser


# ---------------------------------------------------------------- commands


def _methods(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from keras_mtl_cli.catalog import METHODS

    table = Table(title="keras-mtl methods")
    for column in ("kind", "name", "what it does"):
        table.add_column(column)
    for kind, name, text in METHODS:
        # Text, not markup: "[h_a, h_b]" is a description, not a style.
        table.add_row(kind, name, Text(text))
    Console(width=140).print(table)
    return EXIT_OK


COMMANDS = {
    "demo": demo,
    "train": train,
    "affinity": affinity,
    "evaluate": evaluate,
    "predict": predict,
    "compare": compare,
    "plot": plot,
    "methods": _methods,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `mtl`; returns 0 (done), 1 (failed run) or 2 (bad usage)."""
    # Before any backend is imported: TensorFlow's C++ start-up lines stay
    # quiet unless the user sets the variable.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = None
    try:
        args = _parser().parse_args(argv)
        if args.command is None:
            raise UsageError(
                "mtl: name a command: mtl demo, train, affinity, evaluate, "
                "predict, compare, plot or methods (see mtl --help)."
            )
        return COMMANDS[args.command](args)
    except UsageError as error:
        print(str(error), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mtl: interrupted.", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # noqa: BLE001 - the CLI reports, never traces
        if os.environ.get("MTL_TRACEBACK"):
            raise
        from keras_mtl.config import ConfigError

        command = getattr(args, "command", None) or ""
        if isinstance(error, ConfigError | ValueError | FileNotFoundError):
            print(f"mtl {command}: {_one_line(error)}", file=sys.stderr)
            return EXIT_USAGE
        print(
            f"mtl {command}: {type(error).__name__}: {_one_line(error)}",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) < 600 else text[:597] + "..."


if __name__ == "__main__":
    sys.exit(main())
