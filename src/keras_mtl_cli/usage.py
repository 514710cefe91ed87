"""Exit codes, and the error `mtl` reports in one sentence."""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments, config or data: reported in one sentence, exit 2."""
