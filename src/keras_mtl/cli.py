"""The `mtl` command line tool."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments or configuration: reported in one sentence, exit 2."""


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
        help="train the seed's two models and a better one on real tweet pairs",
        description=(
            "Trains Case 1 (concatenate), Case 2 (per input) and a pair-fusion "
            "model on real tweet pairs, and a bag-of-words yardstick; prints "
            "per-task scores, dependency maps and conclusions."
        ),
    )
    demo.add_argument(
        "--out", default="demo-out", help="output folder (default demo-out)"
    )
    demo.add_argument(
        "--quick", action="store_true", help="a small run for a first look"
    )
    demo.add_argument("--epochs", type=_positive, help="training epochs per model")
    demo.add_argument("--train-pairs", type=_positive, help="training pairs")
    demo.add_argument("--batch-size", type=_positive, help="batch size")
    demo.add_argument("--seed", type=int, default=0, help="seed of data and weights")
    return parser


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from keras_mtl.demo import DemoSettings, run

    settings = (
        DemoSettings.quick(args.seed) if args.quick else DemoSettings(seed=args.seed)
    )
    overrides = {
        k: v
        for k, v in (
            ("epochs", args.epochs),
            ("train_pairs", args.train_pairs),
            ("batch_size", args.batch_size),
        )
        if v is not None
    }
    settings = DemoSettings(**{**settings.__dict__, **overrides})
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"mtl demo: --out {out} is a file, expected a folder.")
    run(settings, out)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `mtl`; returns 0 (done), 1 (failed run) or 2 (bad usage)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        args = _parser().parse_args(argv)
        if args.command is None:
            raise UsageError("mtl: name a command: mtl demo (see mtl --help).")
        return {"demo": _demo}[args.command](args)
    except UsageError as error:
        print(str(error), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mtl: interrupted.", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # noqa: BLE001 - the CLI reports, never traces
        if os.environ.get("MTL_TRACEBACK"):
            raise
        print(f"mtl {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
