"""The `mtl` command line tool, importable as `keras_mtl.cli` too.

It lives in the package `keras_mtl_cli`, outside `keras_mtl`, so that
`mtl --help`, `mtl methods` and usage errors answer without importing Keras
or a backend (importing `keras_mtl` imports Keras).
"""

from __future__ import annotations

import sys

from keras_mtl_cli import COMMANDS, EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, main

__all__ = ["COMMANDS", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "UsageError", "main"]

if __name__ == "__main__":
    sys.exit(main())
